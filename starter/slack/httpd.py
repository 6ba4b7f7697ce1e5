"""The HTTP-mode front of the Slack bot: a small asyncio HTTP/1.1 server that takes one signed POST per
connection and hands it to Bolt, and refuses everything else cheaply.

What it defends against (docs/slack.md#limits): a request must arrive whole (head and body) within
``read_timeout_s``, so slow or half-open clients are dropped; waiting connections are coroutines, not
threads, and there are at most ``max_connections`` of them; the body is read only after its
``Content-Length`` is known and under ``max_body`` (chunked bodies are refused); the signature is
checked on the raw bytes before Bolt parses anything, and a replayed signed request is refused; at
most ``max_inflight`` requests are in Bolt at once. Every refusal is a 4xx/5xx with a one-line
reason, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus

from slack_bolt import App
from slack_bolt.request import BoltRequest

from starter.slack.guard import RequestGuard

__all__ = ["Limits", "SlackHTTPServer"]

log = logging.getLogger("deepsci.slack.http")


@dataclass(frozen=True)
class Limits:
    max_body: int = 1 << 20  # Slack's payloads are a few KiB; a large modal stays far below 1 MiB
    max_head: int = 16 << 10  # request line + headers
    read_timeout_s: float = 5.0  # the whole request, head and body
    max_connections: int = 256
    max_inflight: int = 16  # requests in Bolt at once (its threads)
    body_budget: int = 32 << 20  # bytes of bodies being read at once, across connections


class _Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class SlackHTTPServer:
    """Bound when built; ``serve_forever()`` serves until ``shutdown()`` (from another thread)."""

    def __init__(self, app: App, host: str, port: int, path: str, signing_secret: str, limits: Limits = Limits()):
        self.app, self.path, self.limits = app, path, limits
        self.guard = RequestGuard(signing_secret)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=128)
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        self.server_port = self.server_address[1]
        self._pool = ThreadPoolExecutor(max_workers=limits.max_inflight, thread_name_prefix="slack-http")
        self._connections = self._inflight = self._reading = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopped = threading.Event()

    # ---------------------------------------------------------------- lifecycle

    def serve_forever(self, poll_interval: float = 0.5) -> None:  # noqa: ARG002 - socketserver's signature
        self._stopped.clear()
        try:
            asyncio.run(self._serve())
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(stop.set)
            self._stopped.wait(10)

    def server_close(self) -> None:
        self.socket.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._connection, sock=self.socket, limit=self.limits.max_head)
        async with server:
            await self._stop.wait()

    # ---------------------------------------------------------------- one connection, one request

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._connections >= self.limits.max_connections:
            await _reply(writer, 503, "busy: too many open connections, retry later")
            return
        self._connections += 1
        try:
            try:
                status, headers, body = await self._answer(reader)
            except _Refused as r:
                status, headers, body = r.status, {}, r.reason.encode() + b"\n"
                log.info("slack http: refused %d: %s", r.status, r.reason)
            await _write(writer, status, headers, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client left; nothing to answer
        except Exception:  # never a traceback page; the log has it
            log.exception("slack http: failed to answer a request")
            with contextlib.suppress(Exception):
                await _write(writer, 500, {}, b"internal error\n")
        finally:
            self._connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, list[str]], bytes]:
        try:
            async with asyncio.timeout(self.limits.read_timeout_s):
                method, target, headers = await self._head(reader)
                length = self._length(method, target, headers)
                if self._reading + length > self.limits.body_budget:
                    raise _Refused(503, "busy: too many request bodies in flight, retry later")
                self._reading += length
                try:
                    body = await reader.readexactly(length)
                finally:
                    self._reading -= length
        except TimeoutError:
            raise _Refused(408, f"the request did not arrive within {self.limits.read_timeout_s:g} s") from None
        refusal = self.guard.check(body, _one(headers, "x-slack-request-timestamp"),
                                   _one(headers, "x-slack-signature"))
        if refusal is not None:
            raise _Refused(refusal.status, refusal.reason)
        if self._inflight >= self.limits.max_inflight:
            raise _Refused(503, "busy: too many requests in progress, retry later")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _Refused(400, "the body is not UTF-8") from None
        query = target.partition("?")[2]
        self._inflight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._dispatch, text, query,
                                                                    headers)
        finally:
            self._inflight -= 1

    async def _head(self, reader: asyncio.StreamReader) -> tuple[str, str, dict[str, list[str]]]:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _Refused(431, f"request head over {self.limits.max_head} bytes") from None
        lines = raw[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _Refused(400, "malformed request line")
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or not name.isascii():
                raise _Refused(400, "malformed header line")
            headers.setdefault(name.lower(), []).append(value.strip())
        return parts[0], parts[1], headers

    def _length(self, method: str, target: str, headers: dict[str, list[str]]) -> int:
        """The body's length, checked before a byte of it is read."""
        if target.partition("?")[0] != self.path:
            raise _Refused(404, f"not found: Slack posts to {self.path}")
        if method != "POST":
            raise _Refused(405, "only POST is served")
        if "transfer-encoding" in headers:
            raise _Refused(411, "chunked bodies are not accepted; send Content-Length")
        values = set(headers.get("content-length", []))
        if not values:
            raise _Refused(411, "Content-Length is required")
        if len(values) > 1:
            raise _Refused(400, "conflicting Content-Length headers")
        (value,) = values
        if not (value.isascii() and value.isdigit()) or len(value) > 18:
            raise _Refused(400, f"Content-Length must be a non-negative integer, got {value[:40]!r}")
        length = int(value)
        if length > self.limits.max_body:
            raise _Refused(413, f"body of {length} bytes is over the {self.limits.max_body} byte limit")
        return length

    def _dispatch(self, text: str, query: str, headers: dict[str, list[str]]) -> tuple[int, dict[str, list[str]],
                                                                                        bytes]:
        flat: dict[str, str | list[str]] = {k: v[0] if len(v) == 1 else v for k, v in headers.items()}
        try:
            req = BoltRequest(body=text, query=query, headers=flat)  # type: ignore[arg-type]
        except Exception as exc:  # a signed body Bolt cannot parse (e.g. payload=<not JSON>)
            raise _Refused(400, f"the body does not parse as a Slack request ({type(exc).__name__})") from None
        resp = self.app.dispatch(req)
        out = {k: list(v) for k, v in resp.headers.items()}
        return resp.status, out, (resp.body or "").encode()


def _one(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values and len(values) == 1 else None


_HOP = {"content-length", "connection", "transfer-encoding"}


async def _write(writer: asyncio.StreamWriter, status: int, headers: dict[str, list[str]], body: bytes) -> None:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    lines = [f"HTTP/1.1 {status} {phrase}"]
    if not any(k.lower() == "content-type" for k in headers):
        lines.append("Content-Type: text/plain; charset=utf-8")
    lines += [f"{k}: {v}" for k, vs in headers.items() if k.lower() not in _HOP for v in vs]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    writer.write("\r\n".join(lines).encode("latin-1") + body)
    await asyncio.wait_for(writer.drain(), 5)


async def _reply(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await _write(writer, status, {}, reason.encode() + b"\n")
    writer.close()

