"""Parser isolation: PDF and HTML are parsed in a child process under CPU, memory and wall-clock limits.

pymupdf (C) and trafilatura/lxml (C) run on bytes from anywhere. A document that makes them
crash, hang or eat memory must fail that one source, never the worker. ``parse_isolated`` runs
``deepsci.parsing.parse_document`` in a fresh ``python -m deepsci.sandbox`` child per document:

- the bytes go in on stdin, the result comes back as one JSON object on stdout (the child points
  its own fd 1 at stderr first, so a library that prints cannot corrupt the result);
- the child sets ``RLIMIT_AS`` (memory), ``RLIMIT_CPU`` (CPU seconds), ``RLIMIT_CORE`` = 0 and a
  cap on its stderr file before it imports any parser;
- the parent waits at most ``timeout_s`` wall-clock, calling ``on_wait`` about once a second (the
  activity heartbeats there), then kills the child's whole process group (it is a session leader);
- a ``BadDocument`` raised in the child comes back with the same type and message; a crash,
  a limit or an unexpected parser exception becomes a non-retryable ``BadDocument`` whose
  message says which ("parser exceeded 60 s wall-clock limit", "parser ran out of memory
  (limit 1024 MB)", "parser crashed (signal 11: SIGSEGV)").

Markdown and plain text (and the empty / too-large checks) stay in-process: they touch no C
parser and cost microseconds. One child per document; its start-up is the price (see
docs/failure-modes.md for the measured overhead).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from temporalio.exceptions import ApplicationError

from deepsci.errors import NON_RETRYABLE_TYPES, BadDocument, ErrorType, non_retryable
from deepsci.parsing import ParsedDocument, Segment, parse_document, sniff_kind

__all__ = ["ParseLimits", "parse_isolated", "needs_isolation", "ISOLATED_KINDS", "DEFAULT_PARSER"]

log = logging.getLogger("deepsci.sandbox")

ISOLATED_KINDS = ("pdf", "html")
DEFAULT_PARSER = "deepsci.parsing:parse_document"
_REPO_ROOT = Path(__file__).resolve().parent.parent
_STDERR_CAP = 8 * 1024 * 1024  # bytes of child stderr kept on disk (RLIMIT_FSIZE); MuPDF can be chatty
_UNUSED_MODULES = ("pymupdf.layout", "pymupdf4llm")
# How an allocation failure reads when C code reports it (MuPDF: "realloc (1073741824 bytes) failed").
_OOM_HINTS = ("memoryerror", "out of memory", "cannot allocate memory", "bad_alloc", "malloc (", "realloc (",
              "calloc (")


@dataclass(frozen=True)
class ParseLimits:
    """Limits of one parser child. ``from_settings`` reads ``parse_timeout_s``, ``parse_memory_mb``, ``parse_cpu_s``."""

    timeout_s: float = 60.0
    memory_mb: int = 1024
    cpu_s: int = 60

    @classmethod
    def from_settings(cls, settings) -> ParseLimits:
        return cls(timeout_s=float(settings.parse_timeout_s), memory_mb=int(settings.parse_memory_mb),
                   cpu_s=int(settings.parse_cpu_s))


def needs_isolation(data: bytes, uri: str, max_bytes: int) -> bool:
    """True when parsing would hand the bytes to pymupdf or trafilatura."""
    return bool(data) and len(data) <= max_bytes and sniff_kind(data, uri) in ISOLATED_KINDS


def parse_isolated(
    data: bytes,
    uri: str,
    max_bytes: int,
    limits: ParseLimits | None = None,
    on_wait: Callable[[], object] | None = None,
    *,
    parser: str = DEFAULT_PARSER,
) -> ParsedDocument:
    """``parse_document`` with PDF and HTML parsed in a limited child process.

    Raises the same non-retryable ``BadDocument`` errors as ``parse_document``, plus one for a
    child that hit a limit or died. ``on_wait`` is called about once a second while the child
    runs (heartbeats). ``parser`` ("module:function", same signature as ``parse_document``) is a
    seam for tests that need a child that misbehaves.
    """
    limits = limits or ParseLimits()
    if not needs_isolation(data, uri, max_bytes):
        return parse_document(data, uri, max_bytes)  # empty, too large, Markdown or text: cheap, no C parser
    # At most one child per core at a time: the wall-clock limit then measures the parse, not
    # time spent queueing behind other children for CPU (seen: light documents "timing out"
    # while eight activities each ran a memory bomb on two cores).
    while not _CHILD_SLOTS.acquire(timeout=1.0):
        if on_wait is not None:
            on_wait()
    try:
        return _run_child(data, uri, max_bytes, limits, on_wait, parser)
    finally:
        _CHILD_SLOTS.release()


# ---------------------------------------------------------------- parent side

_CHILD_SLOTS = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(_REPO_ROOT) + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONSTARTUP", None)
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the child leads its own session: its pgid is its pid
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def _run_child(data: bytes, uri: str, max_bytes: int, limits: ParseLimits,
               on_wait: Callable[[], object] | None, parser: str) -> ParsedDocument:
    cmd = [sys.executable, "-m", "deepsci.sandbox", f"--uri={uri}", f"--max-bytes={max_bytes}",
           f"--memory-mb={limits.memory_mb}", f"--cpu-s={limits.cpu_s}", f"--parser={parser}",
           f"--parent-pid={os.getpid()}"]
    deadline = time.monotonic() + limits.timeout_s
    with tempfile.TemporaryFile(prefix="deepsci-parse-") as err_file:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err_file,
                                start_new_session=True, close_fds=True, env=_child_env(), cwd=str(_REPO_ROOT))
        out = b""
        timed_out = False
        try:
            pending: bytes | None = data
            while True:
                wait = max(0.0, min(1.0, deadline - time.monotonic()))
                try:
                    out, _ = proc.communicate(input=pending, timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    pending = None  # communicate() keeps feeding the first input; never pass it twice
                    if time.monotonic() >= deadline:
                        timed_out = True
                        break
                    if on_wait is not None:
                        on_wait()
        finally:
            if proc.returncode is None:  # timeout, or on_wait raised (cancellation): never leak a child
                _kill_group(proc)
                with contextlib.suppress(Exception):
                    proc.communicate(timeout=5)
        if timed_out:
            log.warning("parser child for %s killed after %g s wall-clock", uri, limits.timeout_s)
            raise non_retryable(BadDocument, f"parser exceeded {limits.timeout_s:g} s wall-clock limit")
        err_file.seek(0, os.SEEK_END)
        err_file.seek(max(0, err_file.tell() - 4096))
        stderr_tail = err_file.read().decode("utf-8", "replace")
    try:
        return _result(proc.returncode, out, stderr_tail, limits)
    except ApplicationError as err:
        if proc.returncode != 0:  # a crash or a limit: keep what the child said for the operator
            log.warning("parser child for %s: %s (exit %s); stderr tail: %s", uri, err.message, proc.returncode,
                        stderr_tail[-600:].strip() or "-")
        raise


def _oom(limits: ParseLimits) -> ApplicationError:
    return non_retryable(BadDocument, f"parser ran out of memory (limit {limits.memory_mb} MB)")


def _result(returncode: int, out: bytes, stderr_tail: str, limits: ParseLimits) -> ParsedDocument:
    msg = None
    if out:
        try:
            msg = json.loads(out)
        except ValueError:
            msg = None
    if returncode == 0 and isinstance(msg, dict):
        if "doc" in msg:
            d = msg["doc"]
            return ParsedDocument(title=d["title"], kind=d["kind"], text=d["text"],
                                  segments=[Segment(*s) for s in d["segments"]])
        if msg.get("oom"):
            raise _oom(limits)
        if "error" in msg:
            e = msg["error"]
            if e.get("non_retryable"):  # a type outside the taxonomy is still the document's fault
                raise non_retryable(e["type"] if e["type"] in NON_RETRYABLE_TYPES else BadDocument, e["message"])
            raise ApplicationError(e["message"], type=e.get("type"))
    lowered = stderr_tail.lower()
    if returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            raise non_retryable(BadDocument, f"parser exceeded {limits.cpu_s} s CPU limit")
        if sig in (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGKILL) and any(
                h in lowered for h in _OOM_HINTS):
            raise _oom(limits)  # an allocation failure that the C code turned into an abort
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = "unknown"
        raise non_retryable(BadDocument, f"parser crashed (signal {sig}: {name})")
    if any(h in lowered for h in _OOM_HINTS):
        raise _oom(limits)
    raise non_retryable(BadDocument, f"parser crashed (exit code {returncode}, no result)")


# ---------------------------------------------------------------- child side


def _set_limits(memory_mb: int, cpu_s: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_mb > 0:
        cap = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if cpu_s > 0:
        # SIGXCPU at the soft limit (its default action ends the process); SIGKILL a little later.
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 2))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a full stderr file fails the write, not the parse
    resource.setrlimit(resource.RLIMIT_FSIZE, (_STDERR_CAP, _STDERR_CAP))


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


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = f"{type(exc).__name__} {exc}".lower()
    return any(h in text for h in _OOM_HINTS)


def _child_main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m deepsci.sandbox", description="Parse one document from stdin.")
    ap.add_argument("--uri", required=True)
    ap.add_argument("--max-bytes", type=int, required=True)
    ap.add_argument("--memory-mb", type=int, default=0)
    ap.add_argument("--cpu-s", type=int, default=0)
    ap.add_argument("--parser", default=DEFAULT_PARSER)
    ap.add_argument("--parent-pid", type=int, default=0)
    args = ap.parse_args(argv)
    _die_with_parent(args.parent_pid)

    # The result channel is a private copy of fd 1; fd 1 itself now goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    oom_reply = b'{"oom": true}'  # preallocated: after a MemoryError there may be little room left
    _set_limits(args.memory_mb, args.cpu_s)
    # pymupdf imports its optional companions (pymupdf.layout with onnxruntime, pymupdf4llm) when
    # installed; parsing uses neither and they cost ~0.5 s and ~100 MB per child: hide them.
    for optional in _UNUSED_MODULES:
        sys.modules.setdefault(optional, None)  # type: ignore[arg-type]

    data = sys.stdin.buffer.read()
    try:
        module, _, func = args.parser.partition(":")
        import importlib

        fn = getattr(importlib.import_module(module), func)
        doc = fn(data, args.uri, args.max_bytes)
        del data
        reply = json.dumps({"doc": {"title": doc.title, "kind": doc.kind, "text": doc.text,
                                    "segments": [[s.locator, s.start, s.end] for s in doc.segments]}}).encode()
    except ApplicationError as exc:
        if _is_oom(exc):
            reply = oom_reply
        else:
            reply = json.dumps({"error": {"type": exc.type, "message": exc.message,
                                          "non_retryable": exc.non_retryable}}).encode()
    except ImportError as exc:  # the worker's environment, not the document: retryable, and loud
        reply = json.dumps({"error": {"type": ErrorType.PARSER_UNAVAILABLE, "non_retryable": False,
                                      "message": f"parser could not be loaded (memory limit {args.memory_mb} MB): "
                                                 f"{type(exc).__name__}: {exc}"}}).encode()
    except BaseException as exc:  # noqa: BLE001 - every parser failure is reported, none escapes
        if _is_oom(exc):
            reply = oom_reply
        else:
            detail = " ".join(str(exc).split())[:300]
            reply = json.dumps({"error": {"type": BadDocument, "non_retryable": True,
                                          "message": f"parser failed: {type(exc).__name__}: {detail}"}}).encode()
    try:
        out.write(reply)
        out.flush()
    except MemoryError:
        out.write(oom_reply)
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
