"""Starting, attaching to and reading research runs: shared by the CLI, evals and (later) the Slack bot."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from deepsci.contracts import MAX_RUN_ID_LEN, ResearchRequest, ResearchResult
from deepsci.report import report_document
from deepsci.settings import Settings
from deepsci.store import ArtifactStore
from deepsci.text import slugify
from workflows.research import ResearchWorkflow

__all__ = ["workflow_id_for", "start_or_attach", "Started", "report_json"]


def workflow_id_for(req: ResearchRequest, explicit: str | None = None) -> str:
    """`research-<id>` from --id, else `research-<slug>-<hash>` of the question and its scope,
    so asking the same thing twice attaches to the first run instead of paying again.

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
    scope = f"{req.question.strip().lower()}|{req.corpus or ''}|{','.join(req.search)}"
    return f"research-{slugify(req.question)}-{hashlib.sha256(scope.encode()).hexdigest()[:8]}"


@dataclass
class Started:
    handle: WorkflowHandle
    attached: bool
    status: WorkflowExecutionStatus | None


async def start_or_attach(client: Client, settings: Settings, req: ResearchRequest,
                          workflow_id: str) -> Started:
    """Start the run, or attach to the run that already has this id (running or finished)."""
    handle = client.get_workflow_handle_for(ResearchWorkflow.run, workflow_id)
    try:
        desc = await handle.describe()
        return Started(handle, True, desc.status)
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    handle = await client.start_workflow(
        ResearchWorkflow.run, req, id=workflow_id, task_queue=settings.queue("workflows"),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    return Started(handle, False, WorkflowExecutionStatus.RUNNING)


def report_json(settings: Settings, result: ResearchResult) -> dict:
    """The report contract: the published document when there is one, else built from the result."""
    store = ArtifactStore(settings.dsn)
    if result.status == "published":
        row = store.get_report(result.workflow_id)
        if row is not None:
            return row["body"]
    markdown = store.get_artifact(result.report_key)["markdown"] if result.report_key else ""
    return report_document(result.model_dump(mode="json"), markdown)
