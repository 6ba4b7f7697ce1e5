"""Starting, attaching to and reading research runs: shared by the CLI, evals and (later) the Slack bot."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from deepsci.contracts import MAX_RUN_ID_LEN, ResearchRequest, ResearchResult
from deepsci.observe.tracing import TRACER, current_trace_id, trace_url
from deepsci.report import report_document
from deepsci.settings import Settings
from deepsci.store import ArtifactStore
from deepsci.text import slugify
from workflows import search_attributes as sa
from workflows.research import ResearchWorkflow

__all__ = ["workflow_id_for", "start_or_attach", "Started", "report_json", "ATTACH_STATUSES", "run_summary",
           "run_details", "trace_of"]


def workflow_id_for(req: ResearchRequest, explicit: str | None = None) -> str:
    """`research-<id>` from --id, else `research-<slug>-<hash>` of the question and every option,
    so asking the same thing twice attaches to the first run instead of paying again, and asking
    it with other options (sources, rounds, gates, budget) is another run.

    Raises:
        ValueError: the id is longer than ``MAX_RUN_ID_LEN`` (one line, for the operator).
    """
    if explicit:
        explicit = re.sub(r"[^A-Za-z0-9._-]+", "-", explicit.strip())
        wid = explicit if explicit.startswith("research-") else f"research-{explicit}"
        if len(wid) > MAX_RUN_ID_LEN:
            raise ValueError(f"--id is too long: the run id would be {len(wid)} characters, at most "
                             f"{MAX_RUN_ID_LEN}")
        return wid
    scope = _scope(req)
    return f"research-{slugify(req.question)}-{hashlib.sha256(scope.encode()).hexdigest()[:8]}"


def _scope(req: ResearchRequest) -> str:
    # The question as a person means it (case and spacing aside) and every option, in a stable form.
    options = req.model_dump(mode="json", exclude={"question"})
    return req.question.strip().lower() + "|" + json.dumps(options, sort_keys=True)


@dataclass
class Started:
    handle: WorkflowHandle
    attached: bool
    status: WorkflowExecutionStatus | None
    outcome: str | None = None  # how the earlier run with this id ended: published, failed, rejected, ...
    replaced: bool = False  # a new run was started because the earlier one did not publish
    trace_id: str | None = None


# An earlier run in one of these states is reused; any other ending (failed, rejected, cancelled,
# terminated, timed out, budget exhausted) is asked again by a new run under the same id.
ATTACH_STATUSES = ("running", "published")


async def _outcome(handle: WorkflowHandle, status: WorkflowExecutionStatus | None) -> str:
    if status == WorkflowExecutionStatus.RUNNING:
        return "running"
    if status == WorkflowExecutionStatus.COMPLETED:
        res = await handle.result()
        return res.status if isinstance(res, ResearchResult) else "completed"
    return status.name.lower().replace("_", "-") if status else "unknown"


def run_summary(req: ResearchRequest) -> str:
    """The run's one line in the Web UI's list: the question."""
    q = " ".join(req.question.split())
    return q if len(q) <= 200 else q[:199] + "…"


def run_details(settings: Settings, req: ResearchRequest, trace_id: str | None) -> str:
    """The run's static details in the Web UI (Markdown): question, scope, mode, reviewers, trace."""
    scope = f"corpus `{req.corpus}`" if req.corpus else "default corpus"
    lines = [f"**Question:** {req.question}",
             f"**Scope:** {scope}; search {', '.join(req.search)}; up to {req.max_sub_questions} sub-questions "
             f"x {req.max_sources_per_sub_question} sources",
             f"**Mode:** {settings.llm_mode}" + (f"; budget ${req.budget_usd:g}" if req.budget_usd else ""),
             "**Reviewers:** " + ("auto-approve" if req.auto_approve
                                  else ", ".join(req.allowed_reviewers) or "anyone")]
    url = trace_url(settings, trace_id)
    if url:
        lines.append(f"**Trace:** [{trace_id}]({url})")
    return "\n\n".join(lines)


def trace_of(search_attributes: TypedSearchAttributes) -> str | None:
    """The trace id a run was started under (its DeepsciTraceId search attribute)."""
    return search_attributes.get(sa.TRACE_ID)


async def start_or_attach(client: Client, settings: Settings, req: ResearchRequest,
                          workflow_id: str, mode: str = "auto") -> Started:
    """Start the run, or attach to the run that already has this id.

    ``mode`` auto: attach to a running or published run, start a new one (same id) after any other
    ending; ``attach``: attach whatever its state (NOT_FOUND if none); ``new``: always a new run
    (refused with FAILED_PRECONDITION while one with this id is running)."""
    handle = client.get_workflow_handle_for(ResearchWorkflow.run, workflow_id)
    outcome = None
    try:
        desc = await handle.describe()
        outcome = await _outcome(handle, desc.status)
        if mode == "attach" or (mode == "auto" and outcome in ATTACH_STATUSES):
            return Started(handle, True, desc.status, outcome,
                           trace_id=trace_of(desc.typed_search_attributes))
        if outcome == "running":
            raise RPCError(f"run {workflow_id} is still running; `deepsci cancel {workflow_id}` first, "
                           "or ask with another --id", RPCStatusCode.FAILED_PRECONDITION, b"")
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND or mode == "attach":
            raise
    # The root span of the run's trace: the client's start, the workflow, its children and every
    # activity attempt hang under it (Temporal's tracing interceptor carries the context).
    with TRACER.start_as_current_span("research run", attributes={
            "deepsci.run_id": workflow_id, "deepsci.question": req.question[:500]}):
        trace_id = current_trace_id()
        if trace_id:
            await _ensure_trace_attribute(client, settings)
        handle = await client.start_workflow(
            ResearchWorkflow.run, req, id=workflow_id, task_queue=settings.queue("workflows"),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=run_summary(req), static_details=run_details(settings, req, trace_id),
            search_attributes=TypedSearchAttributes([SearchAttributePair(sa.TRACE_ID, trace_id)]) if trace_id else None,
        )
    return Started(handle, False, WorkflowExecutionStatus.RUNNING, outcome, replaced=outcome is not None,
                   trace_id=trace_id)


async def _ensure_trace_attribute(client: Client, settings: Settings) -> None:
    """A server started before DeepsciTraceId existed (and whose worker has not restarted) would
    refuse the start; register it. A server that does not let us (Temporal Cloud) keeps its own."""
    from deepsci.temporal_client import ensure_search_attributes

    try:
        await ensure_search_attributes(client, settings.temporal_namespace, {sa.TRACE_ID.name: "Keyword"})
    except RPCError:
        pass


def report_json(settings: Settings, result: ResearchResult) -> dict:
    """The report contract: the published document when there is one, else built from the result."""
    store = ArtifactStore(settings.dsn)
    if result.status == "published":
        row = store.get_report(result.workflow_id)
        if row is not None:
            return row["body"]
    markdown = store.get_artifact(result.report_key)["markdown"] if result.report_key else ""
    return report_document(result.model_dump(mode="json"), markdown)
