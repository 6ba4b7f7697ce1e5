"""One wall-clock deadline for a whole HTTP exchange: connect, TLS, headers, 1xx replies, redirects, body.

httpx timeouts are per socket operation: a server that sends one header byte a second, or an
endless stream of ``102 Processing``, resets them forever. Here every socket operation of a
sync httpx transport is given ``min(its own timeout, time left)``, and none starts once the
deadline has passed, so a trickling server cannot hold the calling thread past the deadline
(plus the cost of one short system call).

Usage: build the transport with ``deadline_transport(...)`` (or wrap a custom backend in
``DeadlineBackend``) and run the exchange inside ``with deadline(seconds):``. The deadline lives
in a context variable: sync httpx does its socket I/O on the calling thread, so concurrent
exchanges on other threads keep their own deadlines while sharing one connection pool.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import httpcore
import httpx

__all__ = ["DeadlineBackend", "deadline", "deadline_transport", "time_left"]

_DEADLINE: ContextVar[float | None] = ContextVar("deepsci_http_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[float]:
    """Every socket operation in this block ends by ``seconds`` from now (nested blocks: the earlier wins)."""
    when = time.monotonic() + seconds
    outer = _DEADLINE.get()
    token = _DEADLINE.set(when if outer is None else min(outer, when))
    try:
        yield when
    finally:
        _DEADLINE.reset(token)


def time_left() -> float | None:
    """Seconds left before the current deadline, or None outside ``deadline``."""
    when = _DEADLINE.get()
    return None if when is None else when - time.monotonic()


def _clamp(timeout: float | None, exc: type[Exception]) -> float | None:
    left = time_left()
    if left is None:
        return timeout
    if left <= 0:
        raise exc("the exchange's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream):
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        return _DeadlineStream(self.inner.start_tls(ssl_context, server_hostname,
                                                    _clamp(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str):
        return self.inner.get_extra_info(info)


class DeadlineBackend(httpcore.SyncBackend):
    """A sync network backend whose streams obey the current ``deadline``; subclass to change connect."""

    def open_tcp(self, host: str, port: int, timeout=None, local_address=None, socket_options=None):
        """The plain connection, before the deadline wrapper (override this, not ``connect_tcp``)."""
        return super().connect_tcp(host, port, timeout=timeout, local_address=local_address,
                                   socket_options=socket_options)

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        stream = self.open_tcp(host, port, timeout=_clamp(timeout, httpcore.ConnectTimeout),
                               local_address=local_address, socket_options=socket_options)
        return _DeadlineStream(stream)


def deadline_transport(backend: httpcore.NetworkBackend | None = None, **kw) -> httpx.HTTPTransport:
    """An ``httpx.HTTPTransport(**kw)`` whose connections go through ``backend`` (a ``DeadlineBackend``)."""
    transport = httpx.HTTPTransport(**kw)
    pool = transport._pool  # noqa: SLF001 - the one seam httpx offers for the network backend
    if not hasattr(pool, "_network_backend"):  # pragma: no cover - guards an httpcore change
        raise RuntimeError("httpcore has no _network_backend: cannot install the deadline backend")
    pool._network_backend = backend or DeadlineBackend()  # noqa: SLF001
    return transport
