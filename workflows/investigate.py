"""InvestigateWorkflow: one sub-question: search, fetch + parse each source, index, retrieve evidence."""

from __future__ import annotations

import asyncio
import hashlib

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
    from deepsci.policies import POLICIES
    from deepsci.queues import Queues

__all__ = ["InvestigateWorkflow", "failure_reason"]


def failure_reason(err: BaseException) -> str:
    """The innermost readable reason of an activity failure, for the user."""
    cause = err.cause if isinstance(err, ActivityError) and err.cause else err
    if isinstance(cause, ApplicationError):
        return f"{cause.type}: {cause.message}" if cause.type else cause.message
    return str(cause)


@workflow.defn
class InvestigateWorkflow:
    @workflow.run
    async def run(self, inp: InvestigateInput) -> InvestigateResult:
        q = Queues.of_workflow_queue(workflow.info().task_queue)
        key = f"{inp.run_id}/{inp.sub_question.id}"
        found = await workflow.execute_activity_method(
            SourceActivities.search,
            SearchInput(idempotency_key=f"{key}/search", query=inp.sub_question.text,
                        corpus=inp.corpus, providers=inp.providers, limit=inp.max_sources),
            task_queue=q.io, **POLICIES["search"].kwargs(),
        )
        records = await asyncio.gather(*(self._fetch(key, h.uri, h.title, q) for h in found.hits))
        parsed = [r.content_hash for r in records if r.status == "parsed" and r.content_hash]
        unique = list(dict.fromkeys(parsed))
        chunks = 0
        by_hash: dict[str, int] = {}
        evidence = []
        if unique:
            indexed = await workflow.execute_activity_method(
                IndexActivities.index, IndexInput(idempotency_key=f"{key}/index", content_hashes=unique),
                task_queue=q.cpu, **POLICIES["embed"].kwargs(),
            )
            chunks, by_hash = indexed.chunks_indexed, indexed.chunks_by_hash
            got = await workflow.execute_activity_method(
                IndexActivities.retrieve,
                RetrieveInput(idempotency_key=f"{key}/retrieve", query=inp.sub_question.text,
                              content_hashes=unique, limit=inp.evidence_limit),
                task_queue=q.cpu, **POLICIES["embed"].kwargs(),
            )
            evidence = got.evidence
        return InvestigateResult(sub_question_id=inp.sub_question.id, sources=list(records),
                                 chunks_indexed=chunks, evidence=evidence, chunks_by_hash=by_hash)

    async def _fetch(self, key: str, uri: str, title: str, q: Queues) -> SourceRecord:
        item = hashlib.sha256(uri.encode()).hexdigest()[:16]
        try:
            return await workflow.execute_activity_method(
                SourceActivities.fetch_parse,
                FetchParseInput(idempotency_key=f"{key}/fetch/{item}", uri=uri, title=title),
                task_queue=q.cpu, **POLICIES["fetch"].kwargs(),
            )
        except ActivityError as err:
            # A source that cannot be read is recorded with its reason; the run goes on.
            return SourceRecord(source_id=item, uri=uri, title=title or uri.rsplit("/", 1)[-1],
                                kind=uri.rsplit(".", 1)[-1].lower() if "." in uri[-6:] else "unknown",
                                status="failed", error=failure_reason(err))
