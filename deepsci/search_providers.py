"""Web search providers behind one interface, a fallback chain, URL de-duplication and rate limits.

Providers: ``local`` (the corpus folder, deepsci/corpus.py), ``searxng`` (JSON API),
``arxiv`` (Atom API), ``brave`` (Web Search API) and ``tavily`` (Search API). A run chooses
them by ``ResearchRequest.search`` (e.g. ``["searxng", "arxiv"]``).

The chain asks the providers in order until it has ``limit`` distinct results: a provider that
fails or returns nothing hands over to the next one. Results are de-duplicated by normalized URL
(lowercase scheme and host, default port, fragment and ``utm_*`` parameters dropped, trailing
slash stripped). When every provider failed, the chain raises: a retryable error if any failure
was retryable (Temporal retries the activity, after the provider's Retry-After when it sent one),
else a non-retryable one naming each failure.

HTTP clients: httpx with no retries of their own (Temporal owns retries), ONE deadline of
``timeout_s`` for the whole request (``deepsci.http_deadline``; below the search activity's
start-to-close), redirects not followed, the body decoded by hand under ``MAX_RESPONSE_BYTES``
(``deepsci.http_body``: a gzip bomb is refused, not inflated), and HTTP errors mapped by
``deepsci.errors.http_error``. Each provider has an in-process token bucket.
"""

from __future__ import annotations

import json
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from temporalio.exceptions import ApplicationError

from deepsci.contracts import SearchHit
from deepsci.errors import ErrorType, http_error, non_retryable
from deepsci.http_body import ACCEPT_ENCODING, BadEncoding, BodyTooLarge, read_capped
from deepsci.http_deadline import deadline, deadline_transport

__all__ = [
    "SearchProvider", "LocalProvider", "SearxngProvider", "ArxivProvider", "BraveProvider", "TavilyProvider",
    "TokenBucket", "normalize_url", "dedupe", "search_chain", "build_providers", "WEB_PROVIDERS",
]

WEB_PROVIDERS = ("searxng", "arxiv", "brave", "tavily")
# A page of search results is tens of KB; anything past this is an attack or a misconfigured URL.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_url(url: str) -> str:
    """The key two results share when they are the same page."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    netloc = host if ":" not in host else f"[{host}]"
    if port and port != _DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if not k.lower().startswith("utm_")])
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, netloc, path, query, ""))


def dedupe(hits: Sequence[SearchHit], seen: set[str] | None = None) -> list[SearchHit]:
    """Hits with a URL not seen before (first one wins), in order; ``seen`` is updated."""
    seen = set() if seen is None else seen
    out = []
    for h in hits:
        key = normalize_url(h.uri)
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``acquire`` waits for one, at most ``max_wait_s``."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep):
        self.rate, self.burst, self.clock, self.sleep = rate, max(1, burst), clock, sleep
        self.tokens = float(self.burst)
        self.stamp = clock()
        self.paused_until = 0.0
        self.lock = threading.Lock()

    def _reserve(self) -> float:
        """Take a token now or say how long to wait for one."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if now < self.paused_until:
                return self.paused_until - now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate if self.rate > 0 else float("inf")

    def acquire(self, max_wait_s: float, name: str = "provider") -> None:
        waited = 0.0
        while True:
            wait = self._reserve()
            if wait <= 0:
                return
            if waited + wait > max_wait_s:
                raise ApplicationError(f"{name}: local rate limit, next request in {wait:.1f} s",
                                       type=ErrorType.RATE_LIMITED, next_retry_delay=timedelta(seconds=max(wait, 0.1)))
            self.sleep(wait)
            waited += wait

    def pause(self, seconds: float) -> None:
        """No tokens for ``seconds`` (the provider said Retry-After)."""
        with self.lock:
            self.paused_until = max(self.paused_until, self.clock() + seconds)


_BUCKETS: dict[tuple[str, str], TokenBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def _bucket(name: str, base_url: str, rate: float, burst: int) -> TokenBucket:
    with _BUCKETS_LOCK:  # one per provider endpoint per process, shared by every activity
        key = (name, base_url)
        b = _BUCKETS.get(key)
        if b is None or b.rate != rate or b.burst != burst:
            b = _BUCKETS[key] = TokenBucket(rate, burst)
        return b


class SearchProvider(Protocol):
    name: str

    def search(self, query: str, limit: int) -> list[SearchHit]: ...


class LocalProvider:
    """The corpus folder (deepsci/corpus.py), through a callable the activity builds."""

    name = "local"

    def __init__(self, search: Callable[[str, int], list[SearchHit]]):
        self._search = search

    def search(self, query: str, limit: int) -> list[SearchHit]:
        return self._search(query, limit)


@dataclass(frozen=True)
class _Reply:
    """A provider's response, its body already read under the cap."""

    status_code: int
    headers: httpx.Headers
    content: bytes


class _HttpProvider:
    name = "http"

    def __init__(self, base_url: str, *, timeout_s: float = 20.0, rate_per_s: float = 1.0, burst: int = 2,
                 max_wait_s: float = 15.0, client: httpx.Client | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout_s, self.max_wait_s = timeout_s, max_wait_s
        self.bucket = _bucket(self.name, self.base_url, rate_per_s, burst)
        self.client = client or httpx.Client(
            transport=deadline_transport(retries=0), timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            follow_redirects=False,
            headers={"User-Agent": "DeepScientist/0.1 (research pipeline)", "Accept-Encoding": ACCEPT_ENCODING})

    def _request(self, method: str, path: str, **kw) -> _Reply:
        self.bucket.acquire(self.max_wait_s, self.name)
        try:
            with deadline(self.timeout_s), self.client.stream(method, self.base_url + path, **kw) as resp:
                body = read_capped(resp, MAX_RESPONSE_BYTES)
        except httpx.TimeoutException as err:
            raise ApplicationError(f"{self.name}: timed out: {err}", type=ErrorType.SEARCH_TIMEOUT) from err
        except (BodyTooLarge, BadEncoding) as err:
            # The same answer on every retry: the chain moves on to the next provider instead.
            raise non_retryable(ErrorType.BAD_DOCUMENT, f"{self.name}: response refused: {err}") from err
        except (httpx.HTTPError, httpx.InvalidURL) as err:  # InvalidURL: a redirect with a broken Location
            raise ApplicationError(f"{self.name}: {type(err).__name__}: {err}",
                                   type=ErrorType.SEARCH_UNAVAILABLE) from err
        if resp.status_code >= 400:
            retry_after = resp.headers.get("retry-after")
            text = body[:200].decode("utf-8", "replace").strip()
            refused = http_error(self.name, resp.status_code, text, retry_after)
            if refused.next_retry_delay is not None:
                self.bucket.pause(refused.next_retry_delay.total_seconds())
            raise refused
        return _Reply(resp.status_code, resp.headers, body)

    def _json(self, resp: _Reply) -> dict:
        try:
            data = json.loads(resp.content)
        except ValueError as err:  # UnicodeDecodeError is a ValueError too
            raise ApplicationError(f"{self.name}: response is not JSON", type=ErrorType.SEARCH_BAD_RESPONSE) from err
        if not isinstance(data, dict):
            raise ApplicationError(f"{self.name}: unexpected JSON shape", type=ErrorType.SEARCH_BAD_RESPONSE)
        return data

    def close(self) -> None:
        self.client.close()


def _hit(url, title, snippet, score) -> SearchHit | None:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None
    return SearchHit(uri=url, title=str(title or url)[:300], score=round(float(score or 0.0), 4),
                     snippet=" ".join(str(snippet or "").split())[:160])


class SearxngProvider(_HttpProvider):
    name = "searxng"

    def search(self, query: str, limit: int) -> list[SearchHit]:
        resp = self._request("GET", "/search", params={"q": query, "format": "json"},
                             headers={"Accept": "application/json"})
        results = self._json(resp).get("results") or []
        hits = [_hit(r.get("url"), r.get("title"), r.get("content"), r.get("score", 0.0))
                for r in results if isinstance(r, dict)]
        return [h for h in hits if h][:limit]


_ATOM = "{http://www.w3.org/2005/Atom}"
# Question words that would make an AND query over a sub-question match nothing.
_ARXIV_STOP = frozenset("the and for are how what which why who when does did with from that this into "
                        "its their them they can could should would about between than then there".split())


class ArxivProvider(_HttpProvider):
    name = "arxiv"

    def search(self, query: str, limit: int) -> list[SearchHit]:
        words = [re.sub(r"[^\w]", "", w) for w in query.split()]
        words = [w for w in words if len(w) > 2 and w.lower() not in _ARXIV_STOP][:6]
        terms = " AND ".join(f"all:{w}" for w in words) or "all:*"
        resp = self._request("GET", "/api/query", params={"search_query": terms, "start": 0,
                                                           "max_results": limit})
        try:
            root = ET.fromstring(resp.content)
        except ET.ParseError as err:
            raise ApplicationError(f"arxiv: response is not Atom XML: {err}",
                                   type=ErrorType.SEARCH_BAD_RESPONSE) from err
        hits = []
        for i, entry in enumerate(root.iter(f"{_ATOM}entry")):
            abs_url = (entry.findtext(f"{_ATOM}id") or "").strip()
            pdf = next((link.get("href") for link in entry.iter(f"{_ATOM}link")
                        if link.get("title") == "pdf" or link.get("type") == "application/pdf"), None)
            h = _hit(pdf or abs_url, " ".join((entry.findtext(f"{_ATOM}title") or "").split()),
                     entry.findtext(f"{_ATOM}summary"), 1.0 / (i + 1))
            if h:
                hits.append(h)
        return hits[:limit]


class BraveProvider(_HttpProvider):
    name = "brave"

    def __init__(self, base_url: str, api_key: str | None, **kw):
        super().__init__(base_url, **kw)
        self.api_key = api_key

    def search(self, query: str, limit: int) -> list[SearchHit]:
        if not self.api_key:
            raise non_retryable(ErrorType.INVALID_INPUT, "brave: no API key (set BRAVE_API_KEY)")
        resp = self._request("GET", "/res/v1/web/search", params={"q": query, "count": min(limit, 20)},
                             headers={"Accept": "application/json", "X-Subscription-Token": self.api_key})
        results = (self._json(resp).get("web") or {}).get("results") or []
        hits = [_hit(r.get("url"), r.get("title"), r.get("description"), 1.0 / (i + 1))
                for i, r in enumerate(results) if isinstance(r, dict)]
        return [h for h in hits if h][:limit]


class TavilyProvider(_HttpProvider):
    name = "tavily"

    def __init__(self, base_url: str, api_key: str | None, **kw):
        super().__init__(base_url, **kw)
        self.api_key = api_key

    def search(self, query: str, limit: int) -> list[SearchHit]:
        if not self.api_key:
            raise non_retryable(ErrorType.INVALID_INPUT, "tavily: no API key (set TAVILY_API_KEY)")
        resp = self._request("POST", "/search", json={"query": query, "max_results": min(limit, 20)},
                             headers={"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"})
        results = self._json(resp).get("results") or []
        hits = [_hit(r.get("url"), r.get("title"), r.get("content"), r.get("score", 0.0))
                for r in results if isinstance(r, dict)]
        return [h for h in hits if h][:limit]


def build_providers(names: Sequence[str], settings, local: Callable[[str, int], list[SearchHit]] | None = None,
                    ) -> list[SearchProvider]:
    """Providers for ``names`` from settings; an unknown name is an ``InvalidInput``."""
    unknown = [n for n in names if n not in ("local", *WEB_PROVIDERS)]
    if unknown:
        raise non_retryable(ErrorType.INVALID_INPUT, f"search providers not available: {', '.join(unknown)} "
                                          f"(known: local, {', '.join(WEB_PROVIDERS)})")
    out: list[SearchProvider] = []
    for n in names:
        if n == "local":
            if local is None:
                raise non_retryable(ErrorType.INVALID_INPUT, "the local provider needs a corpus")
            out.append(LocalProvider(local))
            continue
        kw = {"timeout_s": settings.search_timeout_s, "rate_per_s": settings.search_rate_per_s.get(n, 1.0),
                  "burst": settings.search_rate_burst, "max_wait_s": settings.search_rate_max_wait_s}
        if n == "searxng":
            out.append(SearxngProvider(settings.searxng_url, **kw))
        elif n == "arxiv":
            out.append(ArxivProvider(settings.arxiv_url, **kw))
        elif n == "brave":
            out.append(BraveProvider(settings.brave_url, settings.brave_api_key, **kw))
        else:
            out.append(TavilyProvider(settings.tavily_url, settings.tavily_api_key, **kw))
    return out


def search_chain(providers: Sequence[SearchProvider], query: str, limit: int,
                 on_error: Callable[[str, BaseException], object] | None = None) -> list[SearchHit]:
    """Ask providers in order until ``limit`` distinct hits; see the module docstring for failures."""
    seen: set[str] = set()
    hits: list[SearchHit] = []
    failures: list[tuple[str, ApplicationError]] = []
    for p in providers:
        if len(hits) >= limit:
            break
        try:
            got = p.search(query, limit)
        except ApplicationError as err:
            failures.append((p.name, err))
            if on_error:
                on_error(p.name, err)
            continue
        hits.extend(dedupe(got, seen))
    if hits or not failures:
        return hits[:limit]
    retryable = [e for _, e in failures if not e.non_retryable]
    if retryable:
        # The longest Retry-After any provider asked for: retrying earlier would meet it again.
        delays = [e.next_retry_delay for e in retryable if e.next_retry_delay is not None]
        first = retryable[0]
        if len(failures) == 1:
            raise first
        raise ApplicationError("every search provider failed: " + "; ".join(f"{n}: {e.message}" for n, e in failures),
                               type=first.type, next_retry_delay=max(delays) if delays else None)
    if len(failures) == 1:
        raise failures[0][1]
    raise ApplicationError("every search provider failed: " + "; ".join(f"{n}: {e.message}" for n, e in failures),
                           type=failures[0][1].type, non_retryable=True)
