"""The counts a run reports: one function for the `progress` query and for the result's stats."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from deepsci.contracts import LlmUsage, SourceRecord, Stats

__all__ = ["run_stats"]


def run_stats(sources: Iterable[SourceRecord], chunks_by_hash: Mapping[str, int], llm_calls: int,
              usage: LlmUsage, citations_dropped: int, duration_s: float = 0.0,
              claims_unsupported: int = 0) -> Stats:
    """Sources found/parsed/failed (each URI once), chunks indexed (each document once) and model spend."""
    srcs = list(sources)
    return Stats(
        sources_found=len(srcs),
        sources_parsed=sum(1 for s in srcs if s.status == "parsed"),
        sources_failed=sum(1 for s in srcs if s.status == "failed"),
        chunks_indexed=sum(chunks_by_hash.values()),
        llm_calls=llm_calls,
        duration_s=duration_s,
        tokens_in=usage.tokens_in,
        tokens_out=usage.tokens_out,
        cost_usd=usage.cost_usd,
        citations_dropped=citations_dropped,
        claims_unsupported=claims_unsupported,
    )
