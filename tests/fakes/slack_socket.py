"""A fake Slack Socket Mode endpoint on loopback: a WebSocket server (RFC 6455, standard library only)
that pushes envelopes to the bot and records its acks.

Only as much of RFC 6455 as slack_sdk's builtin client (slack_sdk/socket_mode/builtin) uses:

* Handshake: the client GETs the URL ``apps.connections.open`` returned (plain TCP for any port but
  443) with ``Upgrade: websocket``, ``Sec-WebSocket-Key`` and ``Sec-WebSocket-Version: 13``; the fake
  answers ``101`` with ``Sec-WebSocket-Accept = base64(sha1(key + GUID))``, or ``403`` for a URL it did
  not issue or one already used (Slack's URLs are single use, so a reconnect asks for a new one).
* Then ``{"type": "hello", ...}`` as Slack sends it (the builtin client does not wait for it; Bolt
  ignores it: it has no envelope_id).
* Frames: unfragmented only. The client's are masked (an unmasked one is a protocol error: the fake
  closes with 1002, RFC 6455 5.1); the fake's are not. Text frames carry JSON; a ping is answered by a
  pong with the same payload (the client pings right after the handshake and every ``ping_interval``
  with ``"<session id>:<time>"``); ``ping()`` sends one to the client, whose pongs are recorded; a
  close frame is answered by one and the TCP connection dropped.
* Never a frame with an empty payload: the builtin client's parser, having read a 2-byte frame, waits
  on the socket for more bytes and, timing out, loses the frame. Pings carry a payload, close frames a
  status code.

Envelopes: ``send(type, payload)`` pushes ``{"envelope_id", "type", "payload",
"accepts_response_payload"}`` to the newest open connection; the client's ack ``{"envelope_id"[,
"payload"]}`` lands in ``acks``. An ack for an unknown envelope, a payload on an ack of an envelope
that does not accept one, or anything else unexpected lands in ``problems``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

__all__ = ["SocketModeFake", "WsConnection", "accept_key"]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def _frame(opcode: int, payload: bytes) -> bytes:
    """A final, unmasked frame (server to client)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


class WsConnection:
    """One client connection: its handshake, and a thread reading its frames."""

    def __init__(self, fake: SocketModeFake, sock: socket.socket, path: str, headers: dict[str, str]):
        self.fake = fake
        self.sock = sock
        self.path = path
        self.headers = headers
        self.send_lock = threading.Lock()
        self.open = True
        self.ended_by: str | None = None  # "client close frame", "client hung up", "server close frame", ...
        self.pings: list[bytes] = []  # payloads of the client's pings
        self.pongs: list[bytes] = []  # payloads of the client's pongs
        self.thread = threading.Thread(target=self._read_loop, daemon=True, name="slack-socket-conn")

    # ------------------------------------------------------------ sending

    def send_frame(self, opcode: int, payload: bytes) -> None:
        assert payload, "the builtin client cannot parse an empty-payload frame (see the module docstring)"
        with self.send_lock:
            if not self.open:
                raise ConnectionError("the Socket Mode connection is closed")
            self.sock.sendall(_frame(opcode, payload))

    def send_json(self, obj: dict) -> None:
        self.send_frame(TEXT, json.dumps(obj).encode())

    def ping(self, payload: bytes = b"fake-slack-ping") -> None:
        self.send_frame(PING, payload)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """The server ends the connection: a close frame, then TCP dropped at once (it does not wait
        for the client's answering close frame)."""
        try:
            self.send_frame(CLOSE, struct.pack("!H", code) + reason.encode())
        except OSError:
            pass
        self._end("server close frame")

    # ------------------------------------------------------------ receiving

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _read_frame(self) -> tuple[int, bytes]:
        b1, b2 = self._recv_exact(2)
        if not b1 & 0x80:
            raise ValueError("a fragmented frame (the builtin client never fragments)")
        opcode, masked, n = b1 & 0x0F, b2 & 0x80, b2 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._recv_exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._recv_exact(8))
        if not masked:
            raise PermissionError("an unmasked frame from the client (RFC 6455 5.1)")
        mask = self._recv_exact(4)
        data = self._recv_exact(n)
        return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    def _read_loop(self) -> None:
        try:
            while self.open:
                opcode, data = self._read_frame()
                if opcode == TEXT:
                    self.fake._on_text(self, data.decode())
                elif opcode == PING:
                    self.pings.append(data)
                    self.send_frame(PONG, data)
                elif opcode == PONG:
                    self.pongs.append(data)
                elif opcode == CLOSE:
                    if self.open:
                        try:
                            self.send_frame(CLOSE, data or struct.pack("!H", 1000))
                        except OSError:
                            pass
                    self._end("client close frame")
                else:
                    self.fake._problem(f"unexpected opcode {opcode:#x} from the client")
        except PermissionError as exc:
            self.fake._problem(str(exc))
            self.close(1002, "masking required")
        except ValueError as exc:
            self.fake._problem(str(exc))
            self.close(1003, "unsupported")
        except (EOFError, OSError):
            self._end("client hung up")

    def _end(self, why: str) -> None:
        with self.send_lock:
            if not self.open:
                return
            self.open = False
            self.ended_by = why
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.fake.cond:
            self.fake.cond.notify_all()


class SocketModeFake:
    """The WebSocket side of Slack's Socket Mode on 127.0.0.1 and an ephemeral port.

    Give ``issue_url`` to ``SlackFake.socket_url``: each ``apps.connections.open`` then hands out a
    fresh single-use ``ws://`` URL."""

    def __init__(self, app_id: str = "A0APP"):
        self.app_id = app_id
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.cond = threading.Condition()
        self.issued: list[str] = []  # tickets handed out by apps.connections.open
        self._unused: set[str] = set()
        self.connections: list[WsConnection] = []
        self.refused: list[str] = []  # request lines answered with 403
        self.sent: dict[str, dict] = {}  # envelope_id -> envelope
        self.acks: dict[str, dict] = {}  # envelope_id -> the client's ack
        self.ack_times: dict[str, float] = {}  # envelope_id -> seconds from send to ack
        self.messages: list[dict] = []  # every text message from the client, parsed
        self.problems: list[str] = []
        self._sent_at: dict[str, float] = {}
        self._stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept_loop, daemon=True, name="slack-socket-accept")

    # ------------------------------------------------------------ lifecycle

    def start(self) -> SocketModeFake:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.thread.join(timeout=5)
        self.listener.close()
        for c in list(self.connections):
            if c.open:
                c.close(1001, "going away")
            c.thread.join(timeout=5)

    def __enter__(self) -> SocketModeFake:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def threads(self) -> list[threading.Thread]:
        return [self.thread, *(c.thread for c in self.connections)]

    # ------------------------------------------------------------ for tests

    def issue_url(self) -> str:
        """What ``apps.connections.open`` answers: a new single-use URL."""
        ticket = uuid.uuid4().hex
        with self.cond:
            self.issued.append(ticket)
            self._unused.add(ticket)
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    @property
    def current(self) -> WsConnection | None:
        """The newest open connection."""
        with self.cond:
            live = [c for c in self.connections if c.open]
        return live[-1] if live else None

    def send(self, type_: str, payload: dict, accepts_response_payload: bool = False,
             envelope_id: str | None = None, conn: WsConnection | None = None) -> str:
        """Push an envelope over the newest open connection (or ``conn``); returns its envelope_id."""
        conn = conn or self.current
        if conn is None:
            raise AssertionError("no open Socket Mode connection to send on")
        eid = envelope_id or str(uuid.uuid4())
        env = {"envelope_id": eid, "type": type_, "payload": payload,
               "accepts_response_payload": accepts_response_payload}
        if type_ == "events_api":
            env.update(retry_attempt=0, retry_reason="")
        with self.cond:
            self.sent[eid] = env
            self._sent_at[eid] = time.monotonic()
        conn.send_json(env)
        return eid

    def disconnect(self, reason: str = "refresh_requested", conn: WsConnection | None = None) -> None:
        """Slack's notice that it is about to drop the connection; the client should reconnect."""
        conn = conn or self.current
        assert conn is not None
        conn.send_json({"type": "disconnect", "reason": reason,
                        "debug_info": {"host": "applink-fake"}})

    def wait(self, predicate, timeout: float = 10.0, what: str = "the Socket Mode fake to see it"):
        """Block until ``predicate()`` is truthy (and return it). For threads; from a coroutine use ``until``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (got := predicate()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}; problems: {self.problems}")
                self.cond.wait(min(left, 0.05))
        return got

    async def until(self, predicate, timeout: float = 10.0, what: str = "the Socket Mode fake to see it"):
        """Poll ``predicate()`` without blocking the event loop (Temporal workers share it)."""
        deadline = time.monotonic() + timeout
        while not (got := predicate()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; problems: {self.problems}")
            await asyncio.sleep(0.02)
        return got

    # ------------------------------------------------------------ the protocol

    def _problem(self, what: str) -> None:
        with self.cond:
            self.problems.append(what)
            self.cond.notify_all()

    def _on_text(self, conn: WsConnection, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            self._problem(f"not JSON: {text[:200]!r}")
            return
        with self.cond:
            self.messages.append(msg)
            eid = msg.get("envelope_id") if isinstance(msg, dict) else None
            if eid is None:
                self.problems.append(f"a message that is not an ack: {text[:200]}")
            elif eid not in self.sent:
                self.problems.append(f"an ack for an unknown envelope {eid}")
            elif eid in self.acks:
                self.problems.append(f"a second ack for envelope {eid}")
            else:
                if "payload" in msg and not self.sent[eid]["accepts_response_payload"]:
                    self.problems.append(f"a payload on the ack of {eid}, which accepts none")
                self.acks[eid] = msg
                self.ack_times[eid] = time.monotonic() - self._sent_at[eid]
            self.cond.notify_all()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                self._handshake(sock)
            except (OSError, ValueError) as exc:
                self._problem(f"handshake failed: {exc!r}")
                sock.close()

    def _handshake(self, sock: socket.socket) -> None:
        sock.settimeout(5)
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = sock.recv(4096)
            if not chunk:
                raise ValueError("the client hung up during the handshake")
            raw += chunk
            if len(raw) > 16384:
                raise ValueError("handshake request too long")
        head, rest = raw.split(b"\r\n\r\n", 1)
        if rest:
            raise ValueError("bytes after the handshake request, before the 101")
        head = head.decode()
        request_line, *lines = head.split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines if ":" in x)}
        method, target, _version = request_line.split(" ", 2)
        url = urlsplit(target)
        ticket = parse_qs(url.query).get("ticket", [""])[0]
        ok = (method == "GET" and url.path == "/link/" and headers.get("upgrade", "").lower() == "websocket"
              and "upgrade" in headers.get("connection", "").lower()
              and headers.get("sec-websocket-version") == "13" and headers.get("sec-websocket-key"))
        with self.cond:
            fresh = ticket in self._unused
            self._unused.discard(ticket)
        if not ok or not fresh:
            self.refused.append(request_line)
            body = b"invalid or used ticket" if ok else b"not a WebSocket upgrade"
            sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            sock.close()
            return
        sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept_key(headers['sec-websocket-key'])}\r\n\r\n").encode())
        sock.settimeout(None)
        conn = WsConnection(self, sock, target, headers)
        with self.cond:
            self.connections.append(conn)
            n = sum(c.open for c in self.connections)
            self.cond.notify_all()
        conn.thread.start()
        conn.send_json({"type": "hello", "num_connections": n,
                        "debug_info": {"host": "applink-fake", "build_number": 1,
                                       "approximate_connection_time": 18060},
                        "connection_info": {"app_id": self.app_id}})
