"""What the Slack bot asks of Temporal: decide a gate (the `decide` Update), start a run, read its
progress. Every refusal comes back as a :class:`Refusal` with a reason a person can act on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from deepsci.contracts import DecisionOutcome, GateDecision, Progress, ResearchRequest
from deepsci.settings import Settings
from deepsci.slack.blocks import mention, slack_date
from starter.runs import Started, start_or_attach, workflow_id_for
from workflows.research import ResearchWorkflow

__all__ = ["Refusal", "decide", "start", "status", "QUERY_TIMEOUT", "UPDATE_TIMEOUT"]

# Both well under the bridge's wait: a click gets an answer (possibly "no answer") in seconds.
QUERY_TIMEOUT = timedelta(seconds=5)
UPDATE_TIMEOUT = timedelta(seconds=15)
_PAST = {"approve": "approved", "reject": "rejected", "request_changes": "sent back with changes requested"}


@dataclass(frozen=True)
class Refusal:
    reason: str


def _rpc_refusal(wid: str, err: RPCError) -> Refusal:
    if err.status == RPCStatusCode.NOT_FOUND:
        return Refusal(f"unknown run `{wid}` (no such workflow in this namespace)")
    if "already completed" in err.message:
        return Refusal(f"the run `{wid}` has already finished")
    if err.status == RPCStatusCode.DEADLINE_EXCEEDED:
        return Refusal("Temporal did not answer in time (is a worker running?); nothing was recorded, try again")
    return Refusal(f"Temporal refused: {err.message}")


async def progress(client: Client, wid: str) -> Progress | Refusal:
    handle = client.get_workflow_handle_for(ResearchWorkflow.run, wid)
    try:
        return await handle.query(ResearchWorkflow.progress, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as err:
        return _rpc_refusal(wid, err)
    except WorkflowQueryFailedError as err:
        return Refusal(f"the run `{wid}` could not answer: {err}")


def closed_reason(p: Progress, d: GateDecision) -> str | None:
    """Why a decision on ``d.gate`` cannot apply because that gate is not open (None: it is open;
    a newer version of it being open is for the workflow's validator to refuse, with its reason)."""
    if p.open_gate == d.gate:
        return None
    last = next((x for x in reversed(p.decisions) if x.gate == d.gate), None)
    if last is None:
        return f"the {d.gate} gate is not open (the run's stage: {p.stage})"
    who = "at the deadline" if last.by_deadline else f"by {mention(last.reviewer)}"
    return (f"the {d.gate} gate is already closed: {_PAST[last.decision]} {who} {slack_date(last.at)}. "
            f"Nothing was changed")


async def decide(client: Client, wid: str, d: GateDecision) -> DecisionOutcome | Refusal:
    """Send the `decide` Update; the workflow's validator has the last word (allowed reviewers,
    stale versions, races between two clicks)."""
    p = await progress(client, wid)
    if isinstance(p, Refusal):
        return p
    if (closed := closed_reason(p, d)) is not None:
        return Refusal(closed)
    handle = client.get_workflow_handle_for(ResearchWorkflow.run, wid)
    try:
        return await handle.execute_update(ResearchWorkflow.decide, d, rpc_timeout=UPDATE_TIMEOUT)
    except WorkflowUpdateFailedError as err:
        return Refusal(getattr(err.cause, "message", None) or str(err.cause))
    except RPCError as err:
        return _rpc_refusal(wid, err)


async def start(client: Client, settings: Settings, question: str) -> tuple[str, Started]:
    """Start a run on ``question`` (or attach to the run already asking it); its reviewers are the
    Slack approvers, so the workflow checks them again on every decision."""
    req = ResearchRequest(question=question, allowed_reviewers=list(settings.slack_approvers))
    wid = workflow_id_for(req)
    return wid, await start_or_attach(client, settings, req, wid)


async def status(client: Client, wid: str) -> tuple[str, Progress] | Refusal:
    handle = client.get_workflow_handle_for(ResearchWorkflow.run, wid)
    try:
        desc = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
    except RPCError as err:
        return _rpc_refusal(wid, err)
    p = await progress(client, wid)
    if isinstance(p, Refusal):
        return p
    return (desc.status.name if desc.status else "UNKNOWN"), p
