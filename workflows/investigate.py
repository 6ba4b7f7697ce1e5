"""InvestigateWorkflow: one sub-question: search, fetch + parse each source, index, retrieve evidence."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.indexing import IndexActivities
    from activities.sources import SourceActivities
    from deepsci.contracts import (
        FetchParseInput,
        IndexInput,
        InvestigateInput,
        InvestigateResult,
        RetrieveInput,
        SearchInput,
        SourceRecord,
    )
    from workflows.calls import call

__all__ = ["InvestigateWorkflow", "failure_reason", "source_kind"]

# A failed source's kind from its URI's suffix, named as the parser names the kinds it reads.
_KIND_BY_SUFFIX = {".pdf": "pdf", ".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown",
                   ".txt": "text"}


def failure_reason(err: BaseException) -> str:
    """The innermost readable reason of an activity failure, for the user."""
    cause = err.cause if isinstance(err, ActivityError) and err.cause else err
    if isinstance(cause, ApplicationError):
        return f"{cause.type}: {cause.message}" if cause.type else cause.message
    return str(cause)


def source_kind(uri: str) -> str:
    """The kind a URI's path suffix names (``https://x.org/a.PDF?dl=1`` -> pdf), else ``unknown``."""
    return _KIND_BY_SUFFIX.get(PurePosixPath(urlsplit(uri).path).suffix.lower(), "unknown")


@workflow.defn
class InvestigateWorkflow:
    @workflow.run
    async def run(self, inp: InvestigateInput) -> InvestigateResult:
        key = f"{inp.run_id}/{inp.sub_question.id}"
        found = await call(SourceActivities.search, SearchInput(
            idempotency_key=f"{key}/search", query=inp.sub_question.text, corpus=inp.corpus,
            providers=inp.providers, limit=inp.max_sources))
        records = await asyncio.gather(*(self._fetch(inp.run_id, key, h.uri, h.title) for h in found.hits))
        parsed = [r.content_hash for r in records if r.status == "parsed" and r.content_hash]
        unique = list(dict.fromkeys(parsed))
        by_hash: dict[str, int] = {}
        evidence = []
        if unique:
            indexed = await call(IndexActivities.index, IndexInput(idempotency_key=f"{key}/index",
                                                                   content_hashes=unique))
            by_hash = indexed.chunks_by_hash
            got = await call(IndexActivities.retrieve, RetrieveInput(
                idempotency_key=f"{key}/retrieve", query=inp.sub_question.text, content_hashes=unique,
                limit=inp.evidence_limit))
            evidence = got.evidence
        return InvestigateResult(sub_question_id=inp.sub_question.id, sources=list(records), evidence=evidence,
                                 chunks_by_hash=by_hash)

    async def _fetch(self, run_id: str, key: str, uri: str, title: str) -> SourceRecord:
        item = hashlib.sha256(uri.encode()).hexdigest()[:16]
        try:
            return await call(SourceActivities.fetch_parse, FetchParseInput(
                idempotency_key=f"{key}/fetch/{item}", uri=uri, title=title, run_id=run_id))
        except ActivityError as err:
            # A source that cannot be read is recorded with its reason; the run goes on.
            return SourceRecord(source_id=item, uri=uri, title=title or uri.rsplit("/", 1)[-1],
                                kind=source_kind(uri), status="failed", error=failure_reason(err))
