"""Parsers that report on the parser child itself (run in the child through ``parse_isolated(parser=...)``).

This module imports nothing from Temporal, so a child that loads it still shows what the pool
itself imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys

from deepsci.parsing import ParsedDocument


def _doc(payload: dict) -> ParsedDocument:
    return ParsedDocument("probe", "pdf", json.dumps(payload), [])


def echo(data: bytes, uri: str, max_bytes: int) -> ParsedDocument:
    return _doc({"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pid": os.getpid()})


def environment(data: bytes, uri: str, max_bytes: int) -> ParsedDocument:
    return _doc({"env": dict(os.environ), "temporalio": sorted(m for m in sys.modules if m.startswith("temporalio")),
                 "preloaded": [m for m in ("pymupdf", "trafilatura") if m in sys.modules]})


def connect(data: bytes, uri: str, max_bytes: int) -> ParsedDocument:
    """``uri`` is "host:port" of a listener in the test process."""
    host, port = uri.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        outcome = "connected"
    except OSError as exc:
        outcome = f"refused: {exc}"
    return _doc({"outcome": outcome})
