"""Loopback fakes speaking the real protocols: a document web server, SearXNG, arXiv, Brave and Tavily.

Each fake is a ``ThreadingHTTPServer`` on 127.0.0.1 and an ephemeral port, started in a daemon
thread. Knobs on every fake: ``mode`` = "ok" | "429" | "500" | "503" | "down" (the connection is
closed without a response) | "bomb" (a gzip body holding 4 GiB of zeros, streamed as read) |
"bomb2" (``Content-Encoding: gzip, gzip``: 2.5 KB holding 1 GiB), ``retry_after`` (sent with
429/503) and ``requests`` (paths seen). ``HostileServer`` adds an attacker's routes for the fetcher.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

__all__ = ["FakeServer", "DocServer", "HostileServer", "SearxngFake", "ArxivFake", "BraveFake", "TavilyFake",
           "make_pdf", "BOMB_INSIDE"]

BOMB_INSIDE = 4 << 30  # bytes of zeros inside the "bomb" gzip body
_MIB = 1 << 20


def _zero_blocks() -> tuple[bytes, bytes]:
    """(gzip header + 1 MiB of zeros, another 1 MiB of zeros): after a full flush the compressor
    emits the same bytes for the same input, so a body of any size is the second block repeated."""
    co = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = co.compress(bytes(_MIB)) + co.flush(zlib.Z_FULL_FLUSH)
    block = co.compress(bytes(_MIB)) + co.flush(zlib.Z_FULL_FLUSH)
    return head, block


def send_gzip_bomb(h: _Handler, layers: int = 1) -> None:
    """A 200 whose gzip body inflates to ``BOMB_INSIDE`` zeros (layers=1, streamed block by block
    while the client reads), or ``gzip, gzip`` around 1 GiB of zeros (layers=2, ~2.5 KB sent)."""
    head, block = _zero_blocks()
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.close_connection = True
    if layers == 2:
        body = gzip.compress(head + block * 1023, 9)
        h.send_header("Content-Encoding", "gzip, gzip")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
        return
    h.send_header("Content-Encoding", "gzip")
    h.send_header("Connection", "close")
    h.end_headers()
    try:
        h.wfile.write(head)
        for _ in range(BOMB_INSIDE // _MIB - 1):  # bounded: ~4 MB on the wire at most
            h.wfile.write(block)
    except OSError:
        pass  # the client stopped reading: what a cap should do


def make_pdf(text: str) -> bytes:
    import pymupdf

    doc = pymupdf.open()
    for para in text.split("\n\n"):
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(50, 50, 550, 800), para, fontsize=11)
    data = doc.tobytes()
    doc.close()
    return data


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args) -> None:  # quiet
        pass

    def _dispatch(self, method: str) -> None:
        fake = self.server.fake
        fake.requests.append((method, self.path))
        if fake.mode == "down":
            self.close_connection = True
            return
        if fake.mode in ("bomb", "bomb2"):
            if method == "POST":
                self.rfile.read(int(self.headers.get("content-length") or 0))
            send_gzip_bomb(self, 1 if fake.mode == "bomb" else 2)
            return
        if fake.mode in ("429", "500", "503"):
            headers = {"Retry-After": str(fake.retry_after)} if fake.retry_after is not None else {}
            self.send(int(fake.mode), b"try later", "text/plain", headers)
            return
        body = b""
        if method == "POST":
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
        fake.handle(self, method, urlsplit(self.path), body)

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def send(self, status: int, body: bytes, ctype: str = "text/html; charset=utf-8",
             headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, obj, status: int = 200) -> None:
        self.send(status, json.dumps(obj).encode(), "application/json")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeServer

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hung up (byte cap, timeout) is expected here


class FakeServer:
    def __init__(self):
        self.mode = "ok"
        self.retry_after: str | None = None
        self.requests: list[tuple[str, str]] = []
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.fake = self
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True,
                                       name=type(self).__name__)

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def handle(self, h: _Handler, method: str, url, body: bytes) -> None:
        h.send(404, b"not found", "text/plain")


# ---------------------------------------------------------------- documents

PAGES = {
    "breakers": ("Circuit breakers for model providers", [
        "A circuit breaker protects model providers by stopping calls after repeated failures.",
        "When the circuit breaker is open, calls to the model provider fail fast instead of waiting on timeouts.",
        "After a cool-down period the circuit breaker lets a few trial calls through to the model provider.",
        "Circuit breakers keep a failing model provider from exhausting the worker's threads and connections.",
    ]),
    "retries": ("Retries with backoff and jitter", [
        "Retries with exponential backoff spread repeated calls to a model provider over time.",
        "Full jitter randomises each retry delay so clients do not retry in lockstep.",
        "A retry budget caps how many retries a client may send to a failing provider.",
    ]),
}
PDF_TEXT = ("Circuit breakers and model providers: a measurement study.\n\n"
            "We measured how circuit breakers protect model providers during outages. "
            "An open circuit breaker sheds load from the model provider within seconds.")


def _html(title: str, sentences: list[str]) -> bytes:
    paras = "".join(f"<p>{escape(s)}</p>\n" for s in sentences)
    return (f"<!doctype html><html><head><title>{escape(title)}</title></head><body><article>"
            f"<h1>{escape(title)}</h1>\n{paras}</article></body></html>").encode()


class DocServer(FakeServer):
    """Routes: ``/page/<name>`` HTML, ``/paper/<id>`` a PDF (no .pdf in the URL), ``/bare`` HTML by
    Content-Type only, ``/redirect/metadata``, ``/redirect/loopback?port=N``, ``/redirect/chain/<n>``,
    ``/huge`` (an endless streamed body without Content-Length), ``/declared-huge`` (a huge
    Content-Length), ``/slow?s=N``, ``/status/<code>[?retry_after=N]``."""

    def __init__(self):
        super().__init__()
        self.pdf = make_pdf(PDF_TEXT)

    def page_url(self, name: str) -> str:
        return f"{self.url}/page/{name}"

    def handle(self, h, method, url, body) -> None:
        path, q = url.path, parse_qs(url.query)
        parts = path.strip("/").split("/")
        if parts[0] == "page" and len(parts) == 2 and parts[1] in PAGES:
            h.send(200, _html(*PAGES[parts[1]]))
        elif parts[0] == "paper":
            h.send(200, self.pdf, "application/octet-stream")  # a PDF by its bytes only
        elif path == "/bare":
            h.send(200, b"<title>bare</title><p>" + b"A bare page whose kind only the header tells. " * 5 + b"</p>",
                   "text/html")
        elif path == "/redirect/metadata":
            h.send(302, b"", headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        elif path == "/redirect/loopback":
            h.send(302, b"", headers={"Location": f"http://127.0.0.1:{q.get('port', ['1'])[0]}/"})
        elif parts[0] == "redirect" and len(parts) == 3 and parts[1] == "chain":
            n = int(parts[2])
            loc = f"/redirect/chain/{n - 1}" if n > 0 else "/page/breakers"
            h.send(302, b"", headers={"Location": loc})
        elif path == "/huge":
            h.send_response(200)
            h.send_header("Content-Type", "text/plain")
            h.send_header("Connection", "close")
            h.end_headers()
            h.close_connection = True
            chunk = b"x" * 65536
            try:
                for _ in range(2000):  # 128 MB at most
                    h.wfile.write(chunk)
            except OSError:
                pass
        elif path == "/declared-huge":
            h.send_response(200)
            h.send_header("Content-Type", "text/plain")
            h.send_header("Content-Length", str(10**10))
            h.end_headers()
            h.close_connection = True
        elif path == "/slow":
            time.sleep(float(q.get("s", ["5"])[0]))
            h.send(200, _html("slow", ["finally"]))
        elif parts[0] == "status":
            ra = q.get("retry_after", [None])[0]
            h.send(int(parts[1]), b"status page", "text/plain", {"Retry-After": ra} if ra else {})
        else:
            h.send(404, b"not found", "text/plain")


class HostileServer(FakeServer):
    """An attacker's web server. Every slow route is bounded (``s`` seconds at most, and it stops
    when the client hangs up), so a test that fails cannot hang the suite.

    Routes: ``/bomb`` and ``/bomb2`` (see ``send_gzip_bomb``), ``/gzip-page`` (an honest gzip HTML
    page), ``/br`` (``Content-Encoding: br``), ``/trickle-headers?s=N`` (one header byte every
    0.2 s), ``/processing?s=N`` (``102 Processing`` every 0.2 s, never a final reply),
    ``/slow-redirect/<n>?delay=D`` (D seconds, then a redirect to ``<n-1>``; 0 is a page),
    ``/to?loc=L`` (a 302 to exactly L), ``/bad-length`` (``Content-Length: 12abc``)."""

    def handle(self, h, method, url, body) -> None:
        path, q = url.path, parse_qs(url.query)
        parts = path.strip("/").split("/")
        limit = min(float(q.get("s", ["15"])[0]), 30.0)
        if path in ("/bomb", "/bomb2"):
            send_gzip_bomb(h, 1 if path == "/bomb" else 2)
        elif path == "/gzip-page":
            page = gzip.compress(_html(*PAGES["breakers"]))
            h.send(200, page, headers={"Content-Encoding": "gzip"})
        elif path == "/br":
            h.send(200, b"\x0b\x02\x80hello\x03", headers={"Content-Encoding": "br"})
        elif path == "/trickle-headers":
            self._trickle(h, b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 10_000, limit, per_write=1)
        elif path == "/processing":
            self._trickle(h, b"HTTP/1.1 102 Processing\r\n\r\n" * 1000, limit,
                          per_write=len(b"HTTP/1.1 102 Processing\r\n\r\n"))
        elif parts[0] == "slow-redirect" and len(parts) == 2:
            n = int(parts[1])
            time.sleep(min(float(q.get("delay", ["1"])[0]), 10.0))
            if n <= 0:
                h.send(200, _html(*PAGES["breakers"]))
            else:
                h.send(302, b"", headers={"Location": f"/slow-redirect/{n - 1}?{url.query}"})
        elif path == "/to":
            h.send(302, b"", headers={"Location": q.get("loc", ["/"])[0]})
        elif path == "/bad-length":
            h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 12abc\r\n\r\nhello")
            h.close_connection = True
        else:
            h.send(404, b"not found", "text/plain")

    @staticmethod
    def _trickle(h, data: bytes, limit_s: float, per_write: int) -> None:
        h.close_connection = True
        end = time.monotonic() + limit_s
        try:
            for i in range(0, len(data), per_write):
                if time.monotonic() > end:
                    return
                h.wfile.write(data[i : i + per_write])
                h.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass  # the client gave up: the deadline worked


# ---------------------------------------------------------------- search APIs


class _SearchFake(FakeServer):
    def __init__(self, results: list[dict] | None = None):
        super().__init__()
        self.results: list[dict] = results or []  # each {"url", "title", "content"}


class SearxngFake(_SearchFake):
    """``GET /search?q=...&format=json`` like SearXNG (``format=json`` enabled)."""

    def handle(self, h, method, url, body) -> None:
        q = parse_qs(url.query)
        if url.path != "/search":
            return h.send(404, b"not found", "text/plain")
        if q.get("format") != ["json"]:
            return h.send(403, b"format not allowed", "text/plain")  # SearXNG's answer without json
        results = [{**r, "engine": "fake", "score": 1.0 / (i + 1)} for i, r in enumerate(self.results)]
        h.send_json({"query": q.get("q", [""])[0], "number_of_results": len(results), "results": results})


class ArxivFake(_SearchFake):
    """``GET /api/query?search_query=...`` answering an Atom feed like export.arxiv.org."""

    def handle(self, h, method, url, body) -> None:
        q = parse_qs(url.query)
        if url.path != "/api/query" or "search_query" not in q:
            return h.send(400, b"bad query", "text/plain")
        n = int(q.get("max_results", ["10"])[0])
        entries = []
        for r in self.results[:n]:
            abs_url = r["url"]
            pdf = r.get("pdf", abs_url.replace("/abs/", "/pdf/"))
            entries.append(
                f"<entry><id>{escape(abs_url)}</id><title>{escape(r['title'])}</title>"
                f"<summary>{escape(r.get('content', ''))}</summary>"
                f'<link href="{escape(abs_url)}" rel="alternate" type="text/html"/>'
                f'<link title="pdf" href="{escape(pdf)}" rel="related" type="application/pdf"/></entry>')
        feed = ('<?xml version="1.0" encoding="UTF-8"?>'
                '<feed xmlns="http://www.w3.org/2005/Atom"><title>arXiv Query</title>'
                + "".join(entries) + "</feed>")
        h.send(200, feed.encode(), "application/atom+xml; charset=utf-8")


class BraveFake(_SearchFake):
    """``GET /res/v1/web/search?q=`` with ``X-Subscription-Token`` like the Brave Search API."""

    def __init__(self, results=None, token: str = "brave-test-key"):
        super().__init__(results)
        self.token = token

    def handle(self, h, method, url, body) -> None:
        if url.path != "/res/v1/web/search":
            return h.send(404, b"not found", "text/plain")
        if h.headers.get("X-Subscription-Token") != self.token:
            return h.send_json({"type": "ErrorResponse", "error": {"code": "SUBSCRIPTION_TOKEN_INVALID"}}, 401)
        results = [{"title": r["title"], "url": r["url"], "description": r.get("content", "")} for r in self.results]
        h.send_json({"type": "search", "web": {"type": "search", "results": results}})


class TavilyFake(_SearchFake):
    """``POST /search`` with ``Authorization: Bearer`` like the Tavily API."""

    def __init__(self, results=None, token: str = "tvly-test-key"):
        super().__init__(results)
        self.token = token

    def handle(self, h, method, url, body) -> None:
        if url.path != "/search" or method != "POST":
            return h.send(404, b"not found", "text/plain")
        if h.headers.get("Authorization") != f"Bearer {self.token}":
            return h.send_json({"detail": {"error": "Unauthorized"}}, 401)
        req = json.loads(body or b"{}")
        results = [{"title": r["title"], "url": r["url"], "content": r.get("content", ""), "score": 0.9}
                   for r in self.results[: int(req.get("max_results", 5))]]
        h.send_json({"query": req.get("query", ""), "results": results})
