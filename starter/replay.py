"""Replay gate: replay saved or live histories against the current workflow code.

A replay failure means the code changed in a way running workflows cannot follow; it must go
behind `workflow.patched()` (see docs/versioning.md).
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from deepsci.temporal_client import DATA_CONVERTER
from workflows.investigate import InvestigateWorkflow
from workflows.research import ResearchWorkflow

__all__ = ["ReplayOutcome", "replay_histories", "load_history_file", "fetch_histories", "WORKFLOWS",
           "HistoryFileError", "MAX_HISTORY_BYTES"]

WORKFLOWS = [ResearchWorkflow, InvestigateWorkflow]
MAX_HISTORY_BYTES = 64 << 20  # Temporal caps a history at 50 MB; its JSON export is a little larger


class HistoryFileError(ValueError):
    """A --file that is not a readable history: the message is one line for the operator."""


@dataclass(frozen=True)
class ReplayOutcome:
    workflow_id: str
    workflow_type: str
    ok: bool
    error: str = ""


def load_history_file(path: Path) -> WorkflowHistory:
    """A history saved as `{"workflow_id": ..., "history": <Temporal JSON history>}` or as the
    plain JSON that `temporal workflow show --output json` and the Web UI download give.

    Only a regular file up to ``MAX_HISTORY_BYTES`` is read: a FIFO would block and ``/dev/zero``
    would never end, so both are refused before a byte is read.

    Raises:
        HistoryFileError: not a regular file, too large, or not a history.
    """
    try:
        data = json.loads(_read_capped(path))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError too
        if isinstance(exc, HistoryFileError):
            raise
        raise HistoryFileError(f"{path}: not JSON ({str(exc)[:200]})") from None
    try:
        if isinstance(data, dict) and "history" in data and "workflow_id" in data:
            return WorkflowHistory.from_json(data["workflow_id"], data["history"])
        return WorkflowHistory.from_json(path.stem, data)
    except Exception as exc:  # protobuf's parse errors name no common base
        raise HistoryFileError(f"{path}: not a Temporal history ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None


def _read_capped(path: Path) -> bytes:
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise HistoryFileError(f"{path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise HistoryFileError(f"{path}: not a regular file")
        if st.st_size > MAX_HISTORY_BYTES:
            raise HistoryFileError(f"{path}: {st.st_size} bytes, over the {MAX_HISTORY_BYTES} byte limit")
        raw = f.read(MAX_HISTORY_BYTES + 1)  # the file may grow after fstat
    if len(raw) > MAX_HISTORY_BYTES:
        raise HistoryFileError(f"{path}: over the {MAX_HISTORY_BYTES} byte limit")
    return raw


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
