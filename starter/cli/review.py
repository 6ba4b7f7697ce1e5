"""Review commands: `approve`, `reject`, `request-changes` (the `decide` Update), `pending` (runs
waiting on a gate) and `raise-budget` (the `raise_budget` Update)."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from deepsci.contracts import BudgetRaise, DecisionKind, GateDecision, GateName
from deepsci.settings import get_settings
from deepsci.temporal_client import connect
from starter.cli.app import Json, app, console, fail, run_client
from starter.cli.options import bounds_text, refusal

__all__ = ["pending_runs"]

Gate = Annotated[GateName, typer.Option("--gate", "-g", help="plan or report")]
Version = Annotated[int | None, typer.Option(
    "--version", help="The gate_version you reviewed (`deepsci status`/`pending`); a decision on an "
                      "older plan or report is refused.")]
Reviewer = Annotated[str | None, typer.Option(help="Reviewer name (default: $USER).")]


def _decide(run_id: str, gate: GateName, decision: DecisionKind, comment: str, reviewer: str | None,
            plan: list[str] | None, as_json: bool, version: int | None = None) -> None:
    from workflows.research import ResearchWorkflow

    s = get_settings()
    payload = GateDecision(gate=gate, decision=decision, reviewer=reviewer or getpass.getuser() or "cli",
                           comment=comment, plan=plan, version=version)

    _update(s, run_id, ResearchWorkflow.decide, payload, as_json, "decision refused",
            lambda outcome: outcome.message)


def _update(s, run_id: str, update, payload, as_json: bool, refused: str, describe) -> None:
    """Send an Update and print its result; the validator's refusal is one line and exit code 2."""
    from temporalio.client import WorkflowUpdateFailedError

    async def go():
        client = await connect(s)
        handle = client.get_workflow_handle(run_id)
        try:
            out = await handle.execute_update(update, payload)
        except WorkflowUpdateFailedError as exc:
            reason = getattr(exc.cause, "message", None) or str(exc.cause)
            if as_json:
                sys.stdout.write(json.dumps({"accepted": False, "reason": reason}) + "\n")
            fail(f"{refused}: {reason}", code=2)
        if as_json:
            sys.stdout.write(out.model_dump_json() + "\n")
        else:
            console.print(describe(out))

    run_client(go())


@app.command()
def approve(run_id: str, gate: Gate,
            comment: Annotated[str, typer.Option(help="Why.")] = "",
            reviewer: Reviewer = None,
            plan: Annotated[list[str] | None, typer.Option(help="Edited sub-question (repeatable; plan gate).")] = None,
            version: Version = None,
            as_json: Json = False):
    """Approve the open gate (the plan gate optionally with an edited plan)."""
    _decide(run_id, gate, "approve", comment, reviewer, plan, as_json, version)


@app.command()
def reject(run_id: str, gate: Gate,
           comment: Annotated[str, typer.Option(help="Why.")] = "",
           reviewer: Reviewer = None,
           version: Version = None,
           as_json: Json = False):
    """Reject the open gate; the run ends with status `rejected`."""
    _decide(run_id, gate, "reject", comment, reviewer, None, as_json, version)


@app.command("request-changes")
def request_changes(run_id: str,
                    comment: Annotated[str, typer.Option(help="What to change.")],
                    reviewer: Annotated[str | None, typer.Option(help="Reviewer name.")] = None,
                    version: Version = None,
                    as_json: Json = False):
    """Ask for one more revision round of the report, with a comment."""
    _decide(run_id, "report", "request_changes", comment, reviewer, None, as_json, version)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    sign, rest = ("-" if seconds < 0 else ""), abs(int(seconds))
    d, rest = divmod(rest, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    if d:
        return f"{sign}{d}d {h}h"
    if h:
        return f"{sign}{h}h {m}m"
    return f"{sign}{m}m {sec}s" if m else f"{sign}{sec}s"


async def pending_runs(client, gate: str | None = None, task_queue: str | None = None,
                       limit: int = 200) -> list[dict]:
    """Runs waiting on a gate (visibility on `DeepsciOpenGate`), longest-waiting first, each with
    its gate, version, how long it has waited and how long until the deadline (`progress` query;
    a run whose query fails, e.g. no worker, is listed from visibility alone)."""
    from datetime import UTC, datetime, timedelta

    from workflows import search_attributes as sa
    from workflows.research import ResearchWorkflow

    gates = [gate] if gate else ["plan", "report"]
    query = ("WorkflowType = 'ResearchWorkflow' AND ExecutionStatus = 'Running' AND "
             f"{sa.OPEN_GATE.name} IN ({', '.join(repr(g) for g in gates)})")
    if task_queue:
        query += f" AND TaskQueue = {task_queue!r}"
    found = [wf async for wf in client.list_workflows(query, limit=limit)]

    async def one(wf) -> dict | None:
        row = {"workflow_id": wf.id, "gate": wf.typed_search_attributes.get(sa.OPEN_GATE),
               "stage": wf.typed_search_attributes.get(sa.STAGE), "gate_version": None,
               "gate_opened_at": None, "gate_deadline": None, "waited_s": None, "deadline_in_s": None,
               "reminders_sent": None, "escalated": None, "started_at": wf.start_time}
        try:
            p = await client.get_workflow_handle(wf.id, run_id=wf.run_id).query(
                ResearchWorkflow.progress, rpc_timeout=timedelta(seconds=5))
        except Exception:  # noqa: BLE001 - no worker, or closed since the visibility record
            return row
        if p.open_gate is None:  # decided since visibility was written
            return None
        now = datetime.now(UTC)
        row.update(gate=p.open_gate, stage=p.stage, gate_version=p.gate_version,
                   gate_opened_at=p.gate_opened_at, gate_deadline=p.gate_deadline,
                   reminders_sent=p.reminders_sent, escalated=p.escalated)
        if p.gate_opened_at:
            row["waited_s"] = round((now - p.gate_opened_at).total_seconds(), 1)
        if p.gate_deadline:
            row["deadline_in_s"] = round((p.gate_deadline - now).total_seconds(), 1)
        return row

    rows = [r for r in await asyncio.gather(*(one(wf) for wf in found)) if r is not None]
    return sorted(rows, key=lambda r: -(r["waited_s"] or 0))


@app.command()
def pending(gate: Annotated[GateName | None, typer.Option("--gate", "-g", help="Only plan or report.")] = None,
            queue: Annotated[str | None, typer.Option(
                "--queue", help="Only runs on this workflow task queue (e.g. deepsci-workflows).")] = None,
            limit: Annotated[int, typer.Option(min=1)] = 200,
            as_json: Json = False):
    """List runs waiting on a gate, with how long each has waited and when its deadline falls."""
    s = get_settings()

    async def go():
        client = await connect(s)
        return await pending_runs(client, gate, queue, limit)

    rows = run_client(go())
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    if not rows:
        console.print("No run is waiting on a gate.")
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("run", "gate", "version", "waiting", "deadline in", "reminders", "escalated"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["workflow_id"], r["gate"] or "?", str(r["gate_version"] or "?"),
                      _duration(r["waited_s"]), _duration(r["deadline_in_s"]),
                      str(r["reminders_sent"] if r["reminders_sent"] is not None else "?"),
                      "yes" if r["escalated"] else "")
    console.print(table)
    console.print(f"{len(rows)} waiting. Decide with `deepsci approve RUN --gate GATE --version N` "
                  "(or reject / request-changes).")


@app.command("raise-budget")
def raise_budget(run_id: str,
                 # Bounds (and NaN/inf) are BudgetRaise's, refused below in one line.
                 usd: Annotated[float | None, typer.Option("--usd", help="New budget in USD. " + bounds_text(
                     BudgetRaise.model_fields["budget_usd"]))] = None,
                 calls: Annotated[int | None, typer.Option("--calls", help="New max_llm_calls. " + bounds_text(
                     BudgetRaise.model_fields["max_llm_calls"]))] = None,
                 reviewer: Annotated[str | None, typer.Option(help="Who raises it (default: $USER).")] = None,
                 as_json: Json = False):
    """Raise a run's budget (cost and/or model calls); a run stopped by its budget resumes."""
    from workflows.research import ResearchWorkflow

    if usd is None and calls is None:
        fail("give --usd and/or --calls")
    if usd is not None and usd <= 0:
        fail("--usd takes a budget above 0")
    s = get_settings()
    try:
        payload = BudgetRaise(budget_usd=usd or None, max_llm_calls=calls,
                              reviewer=reviewer or getpass.getuser() or "cli")
    except ValidationError as exc:  # e.g. --usd nan
        fail(refusal(exc, {"usd": "budget_usd", "calls": "max_llm_calls"}), code=2)

    _update(s, run_id, ResearchWorkflow.raise_budget, payload, as_json, "budget change refused",
            lambda st: f"{st.message}: budget ${st.budget_usd}, max_llm_calls {st.max_llm_calls}; "
                       f"spent ${st.cost_usd:.6f} in {st.llm_calls} calls")
