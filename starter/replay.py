"""Replay gate: replay saved or live histories against the current workflow code.

A replay failure means the code changed in a way running workflows cannot follow; it must go
behind `workflow.patched()` (see docs/versioning.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from deepsci.temporal_client import DATA_CONVERTER
from workflows.investigate import InvestigateWorkflow
from workflows.research import ResearchWorkflow

__all__ = ["ReplayOutcome", "replay_histories", "load_history_file", "fetch_histories", "WORKFLOWS"]

WORKFLOWS = [ResearchWorkflow, InvestigateWorkflow]


@dataclass(frozen=True)
class ReplayOutcome:
    workflow_id: str
    workflow_type: str
    ok: bool
    error: str = ""


def load_history_file(path: Path) -> WorkflowHistory:
    """A history saved as `{"workflow_id": ..., "history": <Temporal JSON history>}` or as the
    plain JSON that `temporal workflow show --output json` and the Web UI download give."""
    data = json.loads(path.read_text())
    if "history" in data and "workflow_id" in data:
        return WorkflowHistory.from_json(data["workflow_id"], data["history"])
    return WorkflowHistory.from_json(path.stem, data)


def _workflow_type(history: WorkflowHistory) -> str:
    first = history.events[0] if history.events else None
    attrs = first.workflow_execution_started_event_attributes if first else None
    return attrs.workflow_type.name if attrs else "?"


async def replay_histories(histories: list[WorkflowHistory], workflows=None) -> list[ReplayOutcome]:
    replayer = Replayer(workflows=workflows or WORKFLOWS, data_converter=DATA_CONVERTER)
    out = []
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        failure = result.replay_failure
        out.append(ReplayOutcome(history.workflow_id, _workflow_type(history), failure is None,
                                 f"{type(failure).__name__}: {failure}" if failure else ""))
    return out


async def fetch_histories(client: Client, workflow_id: str | None, limit: int) -> list[WorkflowHistory]:
    if workflow_id:
        return [await client.get_workflow_handle(workflow_id).fetch_history()]
    query = "WorkflowType IN ('ResearchWorkflow', 'InvestigateWorkflow')"
    return [h async for h in client.list_workflows(query, limit=limit).map_histories()]
