"""Parser isolation: PDF and HTML are parsed in a warm child process under CPU, memory and wall-clock limits.

pymupdf (C) and trafilatura/lxml (C) run on bytes from anywhere. A document that makes them
crash, hang or eat memory must fail that one source, never the worker. ``parse_isolated`` hands
the document to a child of this process's parser pool (``deepsci.parser_pool``):

- each document runs under ``RLIMIT_AS`` (memory) and ``RLIMIT_CPU`` (CPU seconds) set afresh
  for it in the child, and at most ``timeout_s`` wall-clock counted from the handover; the caller's
  ``on_wait`` runs about once a second meanwhile, also while waiting for a free child (heartbeats);
- a child that breaches a limit or dies is killed (its whole process group) and replaced; the
  document fails with a non-retryable ``BadDocument`` whose message says which ("parser exceeded
  60 s wall-clock limit", "parser ran out of memory (limit 1024 MB)", "parser crashed (signal 11:
  SIGSEGV)"); other documents go on in the other children;
- a document the parser refuses comes back with its one-line reason as a ``BadDocument``.

Markdown and plain text (and the empty / too-large checks) stay in-process: they touch no C
parser and cost microseconds.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

from temporalio.exceptions import ApplicationError

from deepsci.errors import NON_RETRYABLE_TYPES, ErrorType, non_retryable
from deepsci.parser_child import DEFAULT_PARSER, OOM_HINTS
from deepsci.parser_pool import ChildDied, ParserPool, WallClock, default_pool
from deepsci.parsing import ParsedDocument, Segment, parse_document, sniff_kind

__all__ = ["ParseLimits", "parse_isolated", "needs_isolation", "ISOLATED_KINDS", "DEFAULT_PARSER"]

log = logging.getLogger("deepsci.sandbox")

ISOLATED_KINDS = ("pdf", "html")


@dataclass(frozen=True)
class ParseLimits:
    """Limits of one parse. ``from_settings`` reads ``parse_timeout_s``, ``parse_memory_mb``, ``parse_cpu_s``."""

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
    charset: str | None = None,
    pool: ParserPool | None = None,
) -> ParsedDocument:
    """``parse_document`` with PDF and HTML parsed in a limited child of the parser pool.

    Raises the same non-retryable ``BadDocument`` errors as ``parse_document``, plus one for a
    child that hit a limit or died. ``charset`` is the one a server declared (HTTP header).
    ``parser`` ("module:function", ``parse_plain``'s signature) is a seam for tests that need a
    child that misbehaves; ``pool`` defaults to this process's pool.
    """
    limits = limits or ParseLimits()
    if not needs_isolation(data, uri, max_bytes):
        return parse_document(data, uri, max_bytes, charset=charset)  # cheap, no C parser
    pool = pool or default_pool()
    header = {"uri": uri, "max_bytes": max_bytes, "memory_mb": limits.memory_mb, "cpu_s": limits.cpu_s,
              "parser": parser, "charset": charset}
    try:
        reply = pool.parse(header, data, limits.timeout_s, on_wait)
    except WallClock:
        log.warning("parser child for %s killed after %g s wall-clock", uri, limits.timeout_s)
        raise non_retryable(ErrorType.BAD_DOCUMENT,
                            f"parser exceeded {limits.timeout_s:g} s wall-clock limit") from None
    except ChildDied as died:
        err = _died(died.returncode, died.stderr_tail, limits)
        log.warning("parser child for %s: %s (exit %s); stderr tail: %s", uri, err.message, died.returncode,
                    died.stderr_tail[-600:].strip() or "-")
        raise err from None
    return _result(reply.body, limits)


def _oom(limits: ParseLimits) -> ApplicationError:
    return non_retryable(ErrorType.BAD_DOCUMENT, f"parser ran out of memory (limit {limits.memory_mb} MB)")


def _result(msg: dict, limits: ParseLimits) -> ParsedDocument:
    if "doc" in msg:
        d = msg["doc"]
        return ParsedDocument(title=d["title"], kind=d["kind"], text=d["text"],
                              segments=[Segment(*s) for s in d["segments"]],
                              pages=d.get("pages", 0), pages_without_text=d.get("pages_without_text", 0))
    if msg.get("oom"):
        raise _oom(limits)
    if "refused" in msg:
        raise non_retryable(ErrorType.BAD_DOCUMENT, msg["refused"])
    e = msg.get("error") or {}
    if e.get("non_retryable"):  # a type outside the taxonomy is still the document's fault
        raise non_retryable(e["type"] if e.get("type") in NON_RETRYABLE_TYPES else ErrorType.BAD_DOCUMENT, e["message"])
    raise ApplicationError(e.get("message") or f"parser child sent an unknown reply: {str(msg)[:200]}",
                           type=e.get("type"))


def _died(returncode: int, stderr_tail: str, limits: ParseLimits) -> ApplicationError:
    """Why a child ended without a reply, from its exit status and the tail of its stderr."""
    lowered = stderr_tail.lower()
    if returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            return non_retryable(ErrorType.BAD_DOCUMENT, f"parser exceeded {limits.cpu_s} s CPU limit")
        if sig in (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGKILL) and any(
                h in lowered for h in OOM_HINTS):
            return _oom(limits)  # an allocation failure that the C code turned into an abort
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = "unknown"
        return non_retryable(ErrorType.BAD_DOCUMENT, f"parser crashed (signal {sig}: {name})")
    if any(h in lowered for h in OOM_HINTS):
        return _oom(limits)
    return non_retryable(ErrorType.BAD_DOCUMENT, f"parser crashed (exit code {returncode}, no result)")
