"""The parser child: a warm process that parses one document at a time under limits (``python -m``).

Started by ``deepsci.parser_pool``. It imports only the standard library before it is told what
to parse, and never ``temporalio`` (0.4 s of import that a parser does not need). It preloads
pymupdf and trafilatura once, says it is ready, then loops: read one request (a JSON header
frame, then the document's bytes as a second frame) from stdin, parse under per-document limits,
write one JSON reply frame on a private copy of fd 1 (fd 1 itself points at stderr, so a library
that prints cannot corrupt a reply). EOF on stdin ends it.

Frames are a 4-byte big-endian length and that many bytes.

Per document: ``RLIMIT_AS`` (soft) = the memory limit, ``RLIMIT_CPU`` (soft) = CPU used so far +
the CPU limit (SIGXCPU ends the child), so each document gets the whole budget however many came
before. A reply with ``"retire": true`` asks the parent to replace this child (after an out-of-
memory or an unexpected parser exception its heap may be in a bad state).

Before anything else the child drops its network: as root it enters a new, empty network
namespace (``unshare(CLONE_NEWNET)``); otherwise it tries an unprivileged user + network
namespace; if the OS refuses both it goes on with the network (best effort) and says so in its
ready message.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import struct
import sys
from typing import BinaryIO

__all__ = ["DEFAULT_PARSER", "DEFAULT_PRELOAD", "read_frame", "frame"]

DEFAULT_PARSER = "deepsci.parsing:parse_plain"
DEFAULT_PRELOAD = ("pymupdf", "trafilatura", "charset_normalizer", "deepsci.parsing")
STDERR_CAP = 8 * 1024 * 1024  # bytes of child stderr kept on disk (RLIMIT_FSIZE); MuPDF can be chatty
# pymupdf imports its optional companions (pymupdf.layout with onnxruntime, pymupdf4llm) when
# installed; parsing uses neither and they cost ~0.5 s and ~100 MB per child: hide them.
_UNUSED_MODULES = ("pymupdf.layout", "pymupdf4llm")
# How an allocation failure reads when C code reports it (MuPDF: "realloc (1073741824 bytes) failed").
OOM_HINTS = ("memoryerror", "out of memory", "cannot allocate memory", "bad_alloc", "malloc (", "realloc (",
             "calloc (")
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_HEADER = struct.Struct(">I")


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


def read_frame(stream: BinaryIO) -> bytes | None:
    """One frame from a blocking stream; None at a clean EOF."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return body


def _die_with_parent(parent_pid: int) -> None:
    """Linux: SIGKILL this child when the worker dies (a SIGKILLed worker cannot kill its children)."""
    if not sys.platform.startswith("linux") or parent_pid <= 0:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the worker died before prctl took effect
        os._exit(1)


def _drop_network() -> str:
    """Enter an empty network namespace; returns how ("netns", "userns+netns") or "none"."""
    if not sys.platform.startswith("linux"):
        return "none"
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return "none"
    if os.geteuid() == 0 and libc.unshare(_CLONE_NEWNET) == 0:
        return "netns"
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
        try:  # map ourselves so file permissions still read as before
            with open("/proc/self/setgroups", "w") as f:
                f.write("deny")
            with open("/proc/self/uid_map", "w") as f:
                f.write(f"{uid} {uid} 1")
            with open("/proc/self/gid_map", "w") as f:
                f.write(f"{gid} {gid} 1")
        except OSError:
            pass
        return "userns+netns"
    return "none"


def _cpu_used() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _limit_document(memory_mb: int, cpu_s: int) -> None:
    _, as_hard = resource.getrlimit(resource.RLIMIT_AS)
    if memory_mb > 0:
        cap = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap if as_hard == resource.RLIM_INFINITY else min(cap, as_hard),
                                                as_hard))
    if cpu_s > 0:
        _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = int(_cpu_used()) + 1 + cpu_s
        if cpu_hard != resource.RLIM_INFINITY:
            soft = min(soft, cpu_hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, cpu_hard))


def _unlimit() -> None:
    for which in (resource.RLIMIT_AS, resource.RLIMIT_CPU):
        _, hard = resource.getrlimit(which)
        resource.setrlimit(which, (hard, hard))


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = f"{type(exc).__name__} {exc}".lower()
    return any(h in text for h in OOM_HINTS)


_PARSERS: dict[str, object] = {}


def _parser(name: str):
    fn = _PARSERS.get(name)
    if fn is None:
        import importlib

        module, _, func = name.partition(":")
        fn = _PARSERS[name] = getattr(importlib.import_module(module), func)
    return fn


def _parse_one(req: dict, data: bytes) -> dict:
    """The reply for one request. Parser failures are replies, never exceptions."""
    from deepsci.parsing import Refusal

    try:
        fn = _parser(req.get("parser") or DEFAULT_PARSER)
    except ImportError as exc:  # the worker's environment, not the document: retryable, and loud
        return {"error": {"type": "ParserUnavailable", "non_retryable": False,
                          "message": f"parser could not be loaded: {type(exc).__name__}: {exc}"}}
    kwargs = {"charset": req["charset"]} if req.get("charset") else {}
    try:
        doc = fn(data, req["uri"], req["max_bytes"], **kwargs)
        return {"doc": {"title": doc.title, "kind": doc.kind, "text": doc.text,
                        "segments": [[s.locator, s.start, s.end] for s in doc.segments],
                        "pages": getattr(doc, "pages", 0), "pages_without_text": getattr(doc, "pages_without_text", 0)}}
    except Refusal as exc:
        if _is_oom(exc):  # "malformed PDF: malloc (...) failed" is the memory limit speaking, not the file
            return {"oom": True, "retire": True}
        return {"refused": str(exc)}
    except BaseException as exc:  # noqa: BLE001 - every parser failure is reported, none escapes
        if _is_oom(exc):
            return {"oom": True, "retire": True}
        if type(exc).__name__ == "ApplicationError":  # a parser seam may raise Temporal's error type
            return {"error": {"type": getattr(exc, "type", None), "message": getattr(exc, "message", str(exc)),
                              "non_retryable": bool(getattr(exc, "non_retryable", False))}}
        detail = " ".join(str(exc).split())[:300]
        return {"refused": f"parser failed: {type(exc).__name__}: {detail}", "retire": True}


def _release_parser_memory() -> None:
    """Empty MuPDF's resource cache: the next document starts from the warm baseline, not this one's peak."""
    pymupdf = sys.modules.get("pymupdf")
    if pymupdf is not None:
        try:
            pymupdf.TOOLS.store_shrink(100)
        except Exception:  # noqa: BLE001 - a cache we could not empty only costs memory; recycling bounds it
            pass


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m deepsci.parser_child", description="Parse documents from stdin.")
    ap.add_argument("--parent-pid", type=int, default=0)
    ap.add_argument("--preload", default=",".join(DEFAULT_PRELOAD))
    args = ap.parse_args(argv)
    _die_with_parent(args.parent_pid)
    network = _drop_network()

    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a full stderr file fails the write, not the parse
    resource.setrlimit(resource.RLIMIT_FSIZE, (STDERR_CAP, STDERR_CAP))
    for optional in _UNUSED_MODULES:
        sys.modules.setdefault(optional, None)  # type: ignore[arg-type]
    import importlib

    for module in filter(None, args.preload.split(",")):
        importlib.import_module(module)
    out.write(frame(json.dumps({"ready": True, "pid": os.getpid(), "network": network}).encode()))
    out.flush()

    oom_reply = frame(b'{"oom": true, "retire": true}')  # preallocated: after a MemoryError little room is left
    stdin = sys.stdin.buffer
    while True:
        header = read_frame(stdin)
        data = read_frame(stdin) if header is not None else None
        if header is None or data is None:
            return 0
        req = json.loads(header)
        _limit_document(int(req.get("memory_mb", 0)), int(req.get("cpu_s", 0)))
        try:
            reply = frame(json.dumps(_parse_one(req, data)).encode())
        except MemoryError:
            reply = oom_reply
        del data
        _release_parser_memory()
        try:
            out.write(reply)
            out.flush()
        except MemoryError:
            out.write(oom_reply)
            out.flush()
        _unlimit()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
