"""Web search providers against loopback fakes, the fallback chain, de-duplication, rate limits, and a
full run whose sources come from SearXNG and are fetched from the fake document server."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError

from deepsci.contracts import ResearchRequest, SearchHit
from deepsci.errors import ErrorType
from deepsci.search_providers import (
    ArxivProvider,
    BraveProvider,
    SearxngProvider,
    TavilyProvider,
    TokenBucket,
    build_providers,
    dedupe,
    normalize_url,
    search_chain,
)
from tests.fakes.web import ArxivFake, BraveFake, DocServer, SearxngFake, TavilyFake
from tests.helpers import running, start_run

FAST = {"rate_per_s": 1000.0, "burst": 10, "timeout_s": 5.0}
RESULTS = [
    {"url": "https://example.org/a", "title": "Page A", "content": "About circuit breakers."},
    {"url": "https://example.org/b", "title": "Page B", "content": "About retries."},
]


@pytest.fixture
def fakes():
    servers = [SearxngFake(list(RESULTS)), ArxivFake([{"url": "http://arxiv.org/abs/2401.00001v1",
                                                        "title": "Breakers  at\n scale",
                                                        "content": "We study circuit breakers."}]),
               BraveFake(list(RESULTS)), TavilyFake(list(RESULTS))]
    for s in servers:
        s.start()
    yield dict(zip(("searxng", "arxiv", "brave", "tavily"), servers, strict=True))
    for s in servers:
        s.stop()


def test_searxng_json_api(fakes):
    p = SearxngProvider(fakes["searxng"].url, **FAST)
    hits = p.search("circuit breakers", 5)
    assert [h.uri for h in hits] == ["https://example.org/a", "https://example.org/b"]
    assert hits[0].title == "Page A" and hits[0].snippet == "About circuit breakers."
    method, path = fakes["searxng"].requests[-1]
    assert method == "GET" and path.startswith("/search?") and "format=json" in path and "q=circuit" in path


def test_arxiv_atom_api_prefers_the_pdf_link(fakes):
    hits = ArxivProvider(fakes["arxiv"].url, **FAST).search("circuit breakers", 3)
    assert [h.uri for h in hits] == ["http://arxiv.org/pdf/2401.00001v1"]
    assert hits[0].title == "Breakers at scale"
    assert "search_query=all%3Acircuit+AND+all%3Abreakers" in fakes["arxiv"].requests[-1][1]


def test_brave_api_with_key(fakes):
    hits = BraveProvider(fakes["brave"].url, "brave-test-key", **FAST).search("q", 5)
    assert [h.title for h in hits] == ["Page A", "Page B"]
    with pytest.raises(ApplicationError) as info:
        BraveProvider(fakes["brave"].url, "wrong", **FAST).search("q", 5)
    assert info.value.type == "HTTP401" and info.value.non_retryable and "API key" in info.value.message
    with pytest.raises(ApplicationError) as info:
        BraveProvider(fakes["brave"].url, None, **FAST).search("q", 5)
    assert info.value.type == ErrorType.INVALID_INPUT


def test_tavily_api_with_key(fakes):
    hits = TavilyProvider(fakes["tavily"].url, "tvly-test-key", **FAST).search("q", 1)
    assert [h.uri for h in hits] == ["https://example.org/a"]
    assert fakes["tavily"].requests[-1] == ("POST", "/search")


def test_fallback_when_the_first_is_down(fakes):
    fakes["searxng"].mode = "down"
    chain = [SearxngProvider(fakes["searxng"].url, **FAST), ArxivProvider(fakes["arxiv"].url, **FAST)]
    errors = []
    hits = search_chain(chain, "circuit breakers", 5, on_error=lambda n, e: errors.append(n))
    assert [h.uri for h in hits] == ["http://arxiv.org/pdf/2401.00001v1"]
    assert errors == ["searxng"]


def test_fallback_when_the_first_returns_nothing(fakes):
    fakes["searxng"].results = []
    chain = [SearxngProvider(fakes["searxng"].url, **FAST), TavilyProvider(fakes["tavily"].url, "tvly-test-key",
                                                                          **FAST)]
    assert len(search_chain(chain, "q", 5)) == 2


def test_second_provider_is_not_asked_when_the_first_fills_the_limit(fakes):
    chain = [SearxngProvider(fakes["searxng"].url, **FAST), ArxivProvider(fakes["arxiv"].url, **FAST)]
    assert len(search_chain(chain, "q", 2)) == 2
    assert fakes["arxiv"].requests == []


def test_duplicates_are_merged(fakes):
    fakes["searxng"].results = [
        {"url": "https://Example.ORG/a/?utm_source=feed&utm_medium=x#top", "title": "A again", "content": ""},
        {"url": "https://example.org/c?id=1&utm_campaign=z", "title": "C", "content": ""},
        {"url": "https://example.org:443/c?id=1", "title": "C again", "content": ""},
    ]
    chain = [SearxngProvider(fakes["searxng"].url, **FAST),
             BraveProvider(fakes["brave"].url, "brave-test-key", **FAST)]
    hits = search_chain(chain, "q", 10)
    assert [h.title for h in hits] == ["A again", "C", "Page B"]  # brave's Page A is a duplicate


def test_normalize_url():
    assert normalize_url("HTTPS://Example.com:443/Path/?utm_source=x&b=2#frag") == "https://example.com/Path?b=2"
    assert normalize_url("http://example.com:8080/") == "http://example.com:8080"
    hits = [SearchHit(uri=u, title=u, score=0) for u in ("http://a.org/x", "http://A.org/x/", "http://a.org/y")]
    assert [h.uri for h in dedupe(hits)] == ["http://a.org/x", "http://a.org/y"]


def test_429_retry_after_becomes_next_retry_delay(fakes):
    fakes["searxng"].mode, fakes["searxng"].retry_after = "429", "9"
    p = SearxngProvider(fakes["searxng"].url, **FAST)
    with pytest.raises(ApplicationError) as info:
        search_chain([p], "q", 5)
    err = info.value
    assert err.type == "HTTP429" and not err.non_retryable and err.next_retry_delay == timedelta(seconds=9)
    assert p.bucket.paused_until > 0  # the provider is not asked again before its Retry-After


def test_every_provider_failing_keeps_the_longest_retry_after(fakes):
    fakes["searxng"].mode, fakes["searxng"].retry_after = "503", "4"
    fakes["arxiv"].mode, fakes["arxiv"].retry_after = "429", "12"
    chain = [SearxngProvider(fakes["searxng"].url, **FAST), ArxivProvider(fakes["arxiv"].url, **FAST)]
    with pytest.raises(ApplicationError) as info:
        search_chain(chain, "q", 5)
    assert not info.value.non_retryable and info.value.next_retry_delay == timedelta(seconds=12)
    assert "searxng" in info.value.message and "arxiv" in info.value.message


def test_only_non_retryable_failures_fail_fast(fakes):
    chain = [BraveProvider(fakes["brave"].url, "wrong", **FAST), TavilyProvider(fakes["tavily"].url, "bad", **FAST)]
    with pytest.raises(ApplicationError) as info:
        search_chain(chain, "q", 5)
    assert info.value.non_retryable


def test_500_is_retryable(fakes):
    fakes["tavily"].mode = "500"
    with pytest.raises(ApplicationError) as info:
        TavilyProvider(fakes["tavily"].url, "tvly-test-key", **FAST).search("q", 5)
    assert info.value.type == "HTTP500" and not info.value.non_retryable


def test_token_bucket_waits_then_refuses():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    b = TokenBucket(rate=0.5, burst=1, clock=lambda: now[0], sleep=sleep)
    b.acquire(10)
    b.acquire(10)  # waits two seconds for the next token
    assert slept == [2.0]
    with pytest.raises(ApplicationError) as info:
        b.acquire(0.5)
    assert info.value.type == "RateLimited" and not info.value.non_retryable
    assert info.value.next_retry_delay == timedelta(seconds=2)


def test_unknown_provider_is_invalid_input(settings):
    with pytest.raises(ApplicationError) as info:
        build_providers(["bing"], settings)
    assert info.value.type == ErrorType.INVALID_INPUT and info.value.non_retryable


async def test_run_with_searxng_cites_fetched_pages(env, deps):
    """A full run through Temporal: SearXNG results point at the fake document server (allowlisted)."""
    from workers.main import build_workers

    doc, sx = DocServer().start(), SearxngFake().start()
    sx.results = [
        {"url": doc.page_url("breakers") + "?utm_source=searx", "title": "Breakers", "content": ""},
        {"url": doc.page_url("breakers"), "title": "Breakers (duplicate)", "content": ""},
        {"url": f"{doc.url}/paper/2401", "title": "Breakers study", "content": ""},
        {"url": doc.page_url("retries"), "title": "Retries", "content": ""},
        {"url": f"{doc.url}/redirect/metadata", "title": "Trap", "content": ""},
    ]
    settings = deps.settings.model_copy(update={
        "searxng_url": sx.url, "fetch_allow_hosts": [f"127.0.0.1:{doc.port}"],
        "search_rate_per_s": {"searxng": 1000.0},
    })
    custom = dataclasses.replace(deps, settings=settings)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    try:
        async with running(build_workers(env.client, custom, prefix)):
            req = ResearchRequest(question="How do circuit breakers protect model providers?", search=["searxng"],
                                  auto_approve=True, max_sub_questions=2, max_sources_per_sub_question=5)
            result = await asyncio.wait_for((await start_run(env.client, prefix, req)).result(), 300)
    finally:
        doc.stop()
        sx.stop()

    assert result.status == "published", result.message
    assert result.citations, "the report cites nothing"
    assert all(c.uri.startswith(doc.url) for c in result.citations)
    for c in result.citations:
        src = next(s for s in result.sources if s.source_id == c.source_id)
        assert c.quote in deps.store.get_document(src.content_hash)["text"]
    parsed = {s.uri: s for s in result.sources if s.status == "parsed"}
    assert any(s.kind == "pdf" for s in parsed.values()), "the PDF without .pdf was not parsed as a PDF"
    assert not any(u == doc.page_url("breakers") for u in parsed), "the duplicate URL was fetched"
    trap = [s for s in result.sources if s.uri.endswith("/redirect/metadata")]
    assert trap and all(s.status == "failed" and "BlockedSource" in (s.error or "") and "metadata" in s.error
                        for s in trap)
    assert ("GET", "/latest/meta-data/") not in doc.requests


def test_non_web_result_urls_are_dropped(fakes):
    """A search engine must not be able to point fetch_parse at a worker's local file."""
    fakes["searxng"].results = [
        {"url": "file:///etc/passwd", "title": "passwd", "content": ""},
        {"url": "javascript:alert(1)", "title": "js", "content": ""},
        {"url": "/relative/path", "title": "rel", "content": ""},
        {"url": "https://example.org/ok", "title": "ok", "content": ""},
    ]
    hits = SearxngProvider(fakes["searxng"].url, **FAST).search("q", 10)
    assert [h.uri for h in hits] == ["https://example.org/ok"]
