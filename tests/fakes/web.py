"""Loopback fakes speaking the real protocols: a document web server, SearXNG, arXiv, Brave and Tavily.

Each fake is a ``ThreadingHTTPServer`` on 127.0.0.1 and an ephemeral port, started in a daemon
thread. Knobs on every fake: ``mode`` = "ok" | "429" | "500" | "503" | "down" (the connection is
closed without a response), ``retry_after`` (sent with 429/503) and ``requests`` (paths seen).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

__all__ = ["FakeServer", "DocServer", "SearxngFake", "ArxivFake", "BraveFake", "TavilyFake", "make_pdf"]


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
