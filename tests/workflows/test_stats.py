"""The run's counts: one function computes them for the `progress` query and the result."""

from __future__ import annotations

from deepsci.contracts import LlmUsage, SourceRecord
from workflows.investigate import source_kind
from workflows.stats import run_stats


def _src(uri: str, status: str) -> SourceRecord:
    return SourceRecord(source_id=uri[-4:], uri=uri, title=uri, kind="pdf", status=status)  # type: ignore[arg-type]


def test_stats_count_sources_by_status_sum_chunks_and_carry_model_spend():
    sources = [_src("file:///a.pdf", "parsed"), _src("file:///b.pdf", "parsed"), _src("file:///c.pdf", "failed")]
    usage = LlmUsage(calls=3, tokens_in=120, tokens_out=40, cost_usd=0.0125)
    s = run_stats(sources, {"h1": 7, "h2": 5}, llm_calls=4, usage=usage, citations_dropped=2, duration_s=1.5,
                  claims_unsupported=3)
    assert (s.sources_found, s.sources_parsed, s.sources_failed, s.chunks_indexed) == (3, 2, 1, 12)
    assert (s.llm_calls, s.tokens_in, s.tokens_out, s.cost_usd) == (4, 120, 40, 0.0125)
    assert (s.citations_dropped, s.claims_unsupported, s.duration_s) == (2, 3, 1.5)
    empty = run_stats([], {}, 0, LlmUsage(), 0)
    assert (empty.sources_found, empty.chunks_indexed, empty.cost_usd, empty.duration_s) == (0, 0, 0.0, 0.0)
    assert empty.claims_unsupported == 0


def test_a_failed_sources_kind_comes_from_its_uri_path_suffix():
    assert source_kind("https://example.com/") == "unknown"  # the old guess said "com/"
    assert source_kind("https://example.com") == "unknown"
    assert source_kind("https://arxiv.org/pdf/2401.01234") == "unknown"  # a dot in the path is no suffix
    assert source_kind("https://x.org/paper.PDF?download=1#page=2") == "pdf"
    assert source_kind("https://x.org/docs/guide.htm") == "html"
    assert source_kind("file:///corpus/notes.md") == "markdown"
    assert source_kind("file:///corpus/readme.txt") == "text"
    assert source_kind("https://x.org/archive.tar.gz") == "unknown"
