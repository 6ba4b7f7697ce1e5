"""The Slack bot's HTTP front as an attacker meets it: raw sockets on loopback against the real server
and a real Bolt app (its Web API on the fake Slack). Every loop is bounded; no test waits on a clock
beyond a socket timeout."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_bolt import App
from slack_sdk import WebClient
from typer.testing import CliRunner

from starter.slack.serve import EVENTS_PATH, Limits, http_server
from tests.fakes.slack import SECRET, TOKEN, SlackFake, command_body, sign

TIMEOUT = Limits(read_timeout_s=1.0)


class Bot:
    """A Bolt app whose `/research` listener counts what it was asked: the acting a refusal must prevent."""

    def __init__(self, limits: Limits = TIMEOUT):
        self.fake = SlackFake().__enter__()
        self.seen: list[str] = []
        app = App(client=WebClient(token=TOKEN, base_url=self.fake.api_url), signing_secret=SECRET)

        @app.command("/research")
        def research(ack, command) -> None:
            self.seen.append(command["text"])
            ack(text=f"got {command['text']}")

        self.server = http_server(app, SECRET, port=0, limits=limits)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.fake.__exit__(None, None, None)

    def signed(self, text: str = "hello") -> bytes:
        body = command_body(text, "U0ANN", f"{self.fake.url}/response/x")
        return request(body.encode(), sign(body))


@pytest.fixture
def bot() -> Iterator[Bot]:
    b = Bot()
    try:
        yield b
    finally:
        b.close()


def request(body: bytes, headers: dict[str, str], length: int | None = None, path: str = EVENTS_PATH) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: bot"] + [f"{k}: {v}" for k, v in headers.items()]
    head.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def read_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def exchange(port: int, raw: bytes) -> tuple[int, str]:
    """Send raw bytes, read the answer to EOF: (status, body)."""
    with connect(port) as s:
        s.sendall(raw)
        data = read_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode()


def one_line(body: str) -> bool:
    return body.count("\n") <= 1 and "Traceback" not in body and len(body) < 200


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_signed_request_is_served_and_its_replay_refused(bot):
    raw = bot.signed("first")
    status, body = exchange(bot.port, raw)
    assert status == 200 and body == "got first"
    status, body = exchange(bot.port, raw)  # the same signed bytes, captured and sent again
    assert status == 409 and "replay" in body and one_line(body)
    assert bot.seen == ["first"]


@pytest.mark.parametrize("head, status", [
    ("", 411),                                        # no Content-Length
    ("Content-Length: -1\r\n", 400),
    ("Content-Length: abc\r\n", 400),
    ("Content-Length: 5\r\nContent-Length: 6\r\n", 400),
    ("Transfer-Encoding: chunked\r\n", 411),
    (f"Content-Length: {128 << 20}\r\n", 413),        # answered before a byte of the body is sent
])
def test_bad_lengths_get_a_one_line_4xx(bot, head, status):
    raw = f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: bot\r\n{head}\r\n".encode()
    got, body = exchange(bot.port, raw)
    assert got == status and one_line(body), body
    assert bot.seen == []


def test_other_paths_methods_and_garbage_are_refused_in_one_line(bot):
    assert exchange(bot.port, request(b"x", {}, path="/admin"))[0] == 404
    assert exchange(bot.port, f"GET {EVENTS_PATH} HTTP/1.1\r\nHost: bot\r\n\r\n".encode())[0] == 405
    assert exchange(bot.port, b"\x16\x03\x01 garbage\r\n\r\n")[0] == 400
    assert exchange(bot.port, request(b"", {"X-Pad": "a" * (64 << 10)}))[0] == 431
    unsigned = exchange(bot.port, request(command_body("x", "U0EVE", "http://x").encode(), {}))
    assert unsigned[0] == 401 and one_line(unsigned[1])
    body = "payload=%7Bnot+json"  # validly signed but not a Slack payload
    status, text = exchange(bot.port, request(body.encode(), sign(body)))
    assert status == 400 and one_line(text), text
    assert bot.seen == []


def test_an_unsigned_huge_post_is_refused_before_its_body_is_read(bot):
    before = rss_kib()
    chunk = b"a" * (1 << 20)
    with connect(bot.port) as s:
        s.sendall(request(b"", {}, length=128 << 20))
        sent = 0
        try:
            while sent < 64 << 20:  # the attacker pushes the body anyway
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the server closed the connection under us: what it should do
        try:
            answer = read_all(s)
        except OSError:
            answer = b""
    assert sent < 64 << 20, "the server kept reading a body it had refused"
    assert not answer or answer.startswith(b"HTTP/1.1 413")
    assert rss_kib() - before < 24 << 10  # 64 MiB pushed; memory stays near flat (a generous bound)


def test_a_slow_body_is_dropped_and_does_not_hold_the_server(bot):
    with connect(bot.port) as slow:
        slow.sendall(request(b"payload=", {}, length=100))  # 8 of 100 bytes, then silence
        assert exchange(bot.port, bot.signed("meanwhile"))[0] == 200
        answer = read_all(slow)  # the server gives up on it after read_timeout_s (socket timeout 10 s)
    assert answer.startswith(b"HTTP/1.1 408") or answer == b""
    assert bot.seen == ["meanwhile"]


def test_fifty_half_open_connections_cost_no_threads_and_good_requests_still_pass(bot):
    threads = threading.active_count()
    held = [connect(bot.port) for _ in range(50)]
    try:
        for s in held:
            s.sendall(f"POST {EVENTS_PATH} HTTP/1.1\r\nContent-Len".encode())  # never finished
        status, body = exchange(bot.port, bot.signed("still here"))
        assert status == 200 and body == "got still here"
        assert threading.active_count() - threads < 10
        for s in held:  # each is dropped once the read timeout passes
            assert read_all(s).startswith(b"HTTP/1.1 408")
    finally:
        for s in held:
            s.close()


def test_past_the_connection_cap_the_answer_is_503():
    b = Bot(Limits(read_timeout_s=5, max_connections=4))
    held = [connect(b.port) for _ in range(4)]
    try:
        for s in held:
            s.sendall(b"POST")
        status, body = 0, ""
        for i in range(50):  # the server may not have accepted all four yet
            status, body = exchange(b.port, b.signed(f"over {i}"))
            if status == 503:
                break
        assert status == 503 and "busy" in body
    finally:
        for s in held:
            s.close()
        b.close()


def test_binds_loopback_unless_told_otherwise():
    app = App(client=WebClient(token=TOKEN, base_url="http://127.0.0.1:9/"), signing_secret=SECRET,
              token_verification_enabled=False)
    server = http_server(app, SECRET, port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()
    from starter.cli import app as cli

    out = CliRunner().invoke(cli, ["slack", "--help"], env={"COLUMNS": "200"}).output
    host_line = next(line for line in out.splitlines() if "--host" in line)
    assert "127.0.0.1" in host_line and "0.0.0.0" not in host_line.split("[default")[-1]
