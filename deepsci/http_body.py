"""Read an HTTP response body under a byte cap that counts DECODED bytes as they are decoded.

httpx decodes ``Content-Encoding`` before a caller sees a byte, and in whole chunks: a 2 KB
``gzip, gzip`` response becomes gigabytes in memory before any cap can look at it. Here the raw
stream (``Response.iter_raw``) is decompressed by hand with ``zlib.decompressobj(...).decompress(
data, max_length)``, so no step produces more than the bytes still allowed under the cap.

Accepted encodings: none, ``identity``, ``gzip`` / ``x-gzip``, ``deflate`` (zlib or raw). More than
one encoding, or any other (``br``, ``zstd``, ``compress``...), is refused with a reason; requests
say so in ``Accept-Encoding`` (``ACCEPT_ENCODING``), so an honest server never sends them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

import httpx

__all__ = ["ACCEPT_ENCODING", "BodyTooLarge", "BadEncoding", "read_capped"]

ACCEPT_ENCODING = "gzip, deflate"
_STEP = 64 * 1024  # decoded bytes produced per decompress call: bounds the memory of one step


class BodyTooLarge(Exception):
    """The decoded body passed the cap (the message says how far it got)."""


class BadEncoding(Exception):
    """An encoding we refuse, or a compressed body that does not decode."""


def _encodings(resp: httpx.Response) -> list[str]:
    # Several headers or a comma list are the same thing (RFC 9110 5.3): both count.
    raw = ",".join(resp.headers.get_list("content-encoding"))
    return [e.strip().lower() for e in raw.split(",") if e.strip() and e.strip().lower() != "identity"]


class _Inflater:
    """gzip or deflate, decoded at most ``_STEP`` bytes per call; concatenated gzip members allowed."""

    def __init__(self, encoding: str):
        self.gzip = encoding in ("gzip", "x-gzip")
        self.first = True
        self.obj = self._new()

    def _new(self, wbits: int | None = None):
        if wbits is None:
            wbits = 16 + zlib.MAX_WBITS if self.gzip else zlib.MAX_WBITS
        return zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> Iterator[bytes]:
        while True:
            try:
                out = self.obj.decompress(data, _STEP)
            except zlib.error as err:
                if self.first and not self.gzip:
                    # "deflate" in the wild is often raw deflate without the zlib header (httpx allows it).
                    self.first, self.obj = False, self._new(-zlib.MAX_WBITS)
                    continue
                raise BadEncoding(f"compressed body does not decode: {err}") from err
            self.first = False
            if out:
                yield out
            if self.obj.eof:
                # Bytes after a gzip member are another member (as gzip(1) reads them).
                data = self.obj.unused_data if self.gzip else b""
                if not data:
                    return
                self.obj = self._new()
                continue
            data = self.obj.unconsumed_tail
            if not data and len(out) < _STEP:  # a full step may leave output inside zlib: ask again
                return

    def finish(self) -> bytes:
        """What a truncated stream still holds (a match of at most a few hundred bytes)."""
        return b"" if self.obj.eof else self.obj.flush()


def _decoded(resp: httpx.Response, max_bytes: int) -> Iterator[bytes]:
    encodings = _encodings(resp)
    if len(encodings) > 1:
        raise BadEncoding(f"more than one Content-Encoding ({', '.join(encodings)}) is refused")
    if not encodings:
        yield from resp.iter_raw()
        return
    if encodings[0] not in ("gzip", "x-gzip", "deflate"):
        raise BadEncoding(f"unsupported Content-Encoding {encodings[0]!r} (accepted: {ACCEPT_ENCODING})")
    inflater = _Inflater(encodings[0])
    received = 0
    for raw in resp.iter_raw():
        received += len(raw)
        if received > max_bytes:  # compressed bytes that decode to little still cost the transfer
            raise BodyTooLarge(f"compressed body exceeds {max_bytes} bytes (stopped reading)")
        yield from inflater.feed(raw)
    try:
        tail = inflater.finish()
    except zlib.error as err:
        raise BadEncoding(f"compressed body does not decode: {err}") from err
    if tail:
        yield tail


def read_capped(resp: httpx.Response, max_bytes: int, on_chunk: Callable[[], object] | None = None) -> bytes:
    """The decoded body of a streamed response, at most ``max_bytes``.

    Raises ``BodyTooLarge`` past the cap (a declared larger Content-Length is refused before
    reading), ``BadEncoding`` for a refused or corrupt encoding; httpx errors pass through.
    ``on_chunk`` runs after every decoded piece (deadline checks, heartbeats).
    """
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(f"body is {declared} bytes (limit {max_bytes})")
    buf = bytearray()
    for piece in _decoded(resp, max_bytes):
        buf += piece
        if len(buf) > max_bytes:
            raise BodyTooLarge(f"body exceeds {max_bytes} bytes (stopped reading)")
        if on_chunk is not None:
            on_chunk()
    return bytes(buf)
