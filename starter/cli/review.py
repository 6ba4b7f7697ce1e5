"""Review commands: `approve`, `reject`, `request-changes` (the `decide` Update), `pending` (runs
waiting on a gate) and `raise-budget` (the `raise_budget` Update)."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from deepsci.contracts import BudgetRaise, DecisionKind, GateDecision, GateName
from deepsci.settings import get_settings
from deepsci.temporal_client import connect
from starter.cli.app import EXIT_REFUSED, Json, app, console, fail, run_client
from starter.cli.options import bounds_text, refusal, switch

__all__ = ["pending_runs"]

Gate = Annotated[GateName, typer.Option("--gate", "-g", help="Which gate: plan or report.")]
Version = Annotated[int | None, typer.Option(
    "--version", help="The gate_version you reviewed (`deepsci status`/`pending`); a decision on an "
                      "older plan or report is refused.")]
Reviewer = Annotated[str | None, typer.Option(help="Reviewer name (default: $USER).")]


def _decide(run_ids: list[str] | None, gate: GateName, decision: DecisionKind, comment: str,
            reviewer: str | None, plan: list[str] | None, as_json: bool, version: int | None = None,
            all_pending: bool = False, queue: str | None = None) -> None:
    """One decision on each run (``--all-pending``: on every run waiting on ``gate``), each still
    validated by its run; one run keeps the single-decision output, several print a line each."""
    from workflows.research import ResearchWorkflow

    s = get_settings()
    who = reviewer or getpass.getuser() or "cli"
    if all_pending and run_ids:
        fail("give run ids or --all-pending, not both", code=EXIT_REFUSED)
    if not (all_pending or run_ids):
        fail("give a run id (or several), or --all-pending --gate GATE", code=EXIT_REFUSED)
    if not all_pending and len(run_ids or []) == 1:
        payload = GateDecision(gate=gate, decision=decision, reviewer=who, comment=comment, plan=plan,
                               version=version)
        _update(s, (run_ids or [""])[0], ResearchWorkflow.decide, payload, as_json, "decision refused",
                lambda outcome: outcome.message)
        return

    async def one(client, wid: str, seen_version: int | None) -> dict:
        from temporalio.client import WorkflowUpdateFailedError
        from temporalio.service import RPCError

        payload = GateDecision(gate=gate, decision=decision, reviewer=who, comment=comment, plan=plan,
                               version=seen_version)
        try:
            out = await client.get_workflow_handle(wid).execute_update(ResearchWorkflow.decide, payload)
        except WorkflowUpdateFailedError as exc:
            return {"workflow_id": wid, "accepted": False,
                    "reason": getattr(exc.cause, "message", None) or str(exc.cause)}
        except RPCError as exc:
            return {"workflow_id": wid, "accepted": False, "reason": exc.message}
        return {"workflow_id": wid, "accepted": True, "message": out.message, "version": out.version}

    async def go():
        from starter.cli.lookup import candidates

        client = await connect(s)
        if all_pending:
            rows = await pending_runs(client, gate, queue)
            # The version each run showed in `pending`: a run that moved on since refuses it.
            targets = [(r["workflow_id"], version if version is not None else r["gate_version"]) for r in rows]
        else:
            targets = [(await _existing(client, candidates(r)), version) for r in run_ids or []]
        limit = asyncio.Semaphore(8)

        async def bounded(wid: str, v: int | None) -> dict:
            async with limit:
                return await one(client, wid, v)

        return await asyncio.gather(*(bounded(w, v) for w, v in targets))

    results = run_client(go())
    if as_json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
    else:
        for r in results:
            line = r["message"] if r["accepted"] else f"refused: {r['reason']}"
            console.print(f"{r['workflow_id']}: {line}", soft_wrap=True, markup=False)
        refused = sum(not r["accepted"] for r in results)
        console.print(f"{len(results) - refused} decided, {refused} refused.")
    if any(not r["accepted"] for r in results):
        raise typer.Exit(EXIT_REFUSED)


async def _existing(client, ids: list[str]) -> str:
    """The first of ``ids`` that names a run (else the first, and the Update says there is none)."""
    from temporalio.service import RPCError

    for wid in ids:
        try:
            await client.get_workflow_handle(wid).describe()
            return wid
        except RPCError:
            continue
    return ids[0]


def _update(s, run_id: str, update, payload, as_json: bool, refused: str, describe) -> None:
    """Send an Update and print its result; the validator's refusal is one line and exit code 2."""
    from temporalio.client import WorkflowUpdateFailedError

    from starter.cli.lookup import find_run

    async def go():
        client = await connect(s)
        wid, _ = await find_run(client, run_id)
        handle = client.get_workflow_handle(wid)
        try:
            out = await handle.execute_update(update, payload)
        except WorkflowUpdateFailedError as exc:
            reason = getattr(exc.cause, "message", None) or str(exc.cause)
            if as_json:
                sys.stdout.write(json.dumps({"accepted": False, "reason": reason}) + "\n")
            fail(f"{refused}: {reason}", code=EXIT_REFUSED)
        if as_json:
            sys.stdout.write(out.model_dump_json() + "\n")
        else:
            console.print(describe(out))

    run_client(go())


RunIds = Annotated[list[str] | None, typer.Argument(
    help="Run id(s) (the `research-` prefix is optional); several decide in one go.", show_default=False)]
AllPending = Annotated[bool, switch("--all-pending", help="Decide every run waiting on --gate (see `deepsci "
                                                          "pending`); each decision is still validated.")]
PendingQueue = Annotated[str | None, typer.Option(
    "--queue", help="With --all-pending: only runs on this workflow task queue.")]


@app.command()
def approve(gate: Gate, run_ids: RunIds = None,
            comment: Annotated[str, typer.Option(help="Why.")] = "",
            reviewer: Reviewer = None,
            plan: Annotated[list[str] | None, typer.Option(help="Edited sub-question (repeatable; plan gate).")] = None,
            version: Version = None,
            all_pending: AllPending = False,
            queue: PendingQueue = None,
            as_json: Json = False):
    """Approve the open gate (the plan gate optionally with an edited plan) of one or more runs."""
    _decide(run_ids, gate, "approve", comment, reviewer, plan, as_json, version, all_pending, queue)


@app.command()
def reject(gate: Gate, run_ids: RunIds = None,
           comment: Annotated[str, typer.Option(help="Why.")] = "",
           reviewer: Reviewer = None,
           version: Version = None,
           all_pending: AllPending = False,
           queue: PendingQueue = None,
           as_json: Json = False):
    """Reject the open gate of one or more runs; each ends with status `rejected`."""
    _decide(run_ids, gate, "reject", comment, reviewer, None, as_json, version, all_pending, queue)


@app.command("request-changes")
def request_changes(run_ids: RunIds = None,
                    comment: Annotated[str, typer.Option(help="What to change.")] = "",
                    reviewer: Annotated[str | None, typer.Option(help="Reviewer name (default: $USER).")] = None,
                    version: Version = None,
                    all_pending: AllPending = False,
                    queue: PendingQueue = None,
                    as_json: Json = False):
    """Ask for one more revision round of the report, with a comment."""
    if not comment.strip():
        fail("--comment says what to change", code=EXIT_REFUSED)
    _decide(run_ids, "report", "request_changes", comment, reviewer, None, as_json, version, all_pending,
            queue)


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


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


async def pending_runs(client, gate: str | None = None, task_queue: str | None = None) -> list[dict]:
    """Every run waiting on a gate, longest-waiting first, from ONE visibility query on
    `DeepsciOpenGate` (paged by the server): the gate from the search attribute; the question, gate
    version, opening time and deadline from the memo the run keeps (runs started before
    `stages-end-true` have none: those fields are None). No run is queried, so no worker is needed."""
    from workflows import search_attributes as sa

    gates = [gate] if gate else ["plan", "report"]
    query = ("WorkflowType = 'ResearchWorkflow' AND ExecutionStatus = 'Running' AND "
             f"{sa.OPEN_GATE.name} IN ({', '.join(repr(g) for g in gates)})")
    if task_queue:
        query += f" AND TaskQueue = {task_queue!r}"
    now = datetime.now(UTC)
    rows = []
    async for wf in client.list_workflows(query, page_size=500):
        memo = await wf.memo()
        open_gate = wf.typed_search_attributes.get(sa.OPEN_GATE)
        fresh = memo.get("gate") == open_gate  # the memo describes this gate, not an earlier one
        opened, deadline = (_when(memo.get("gate_opened_at")), _when(memo.get("gate_deadline"))) if fresh \
            else (None, None)
        rows.append({
            "workflow_id": wf.id, "gate": open_gate, "stage": wf.typed_search_attributes.get(sa.STAGE),
            "question": memo.get("question"), "gate_version": memo.get("gate_version") if fresh else None,
            "gate_opened_at": opened.isoformat() if opened else None,
            "gate_deadline": deadline.isoformat() if deadline else None,
            "waited_s": round((now - opened).total_seconds(), 1) if opened else None,
            "deadline_in_s": round((deadline - now).total_seconds(), 1) if deadline else None,
            "started_at": wf.start_time.isoformat()})
    return sorted(rows, key=lambda r: -(r["waited_s"] or 0))


@app.command()
def pending(gate: Annotated[GateName | None, typer.Option("--gate", "-g", help="Only plan or report.")] = None,
            queue: Annotated[str | None, typer.Option(
                "--queue", help="Only runs on this workflow task queue (e.g. deepsci-workflows).")] = None,
            limit: Annotated[int, typer.Option(min=1, help="Rows per page.")] = 50,
            page: Annotated[int, typer.Option(min=1, help="Which page of --limit rows.")] = 1,
            as_json: Json = False):
    """List runs waiting on a gate, longest-waiting first, paged, with the total.

    Each row has the question, how long the run has waited and when its deadline falls."""
    s = get_settings()

    async def go():
        client = await connect(s)
        return await pending_runs(client, gate, queue)

    everything = run_client(go())
    rows = everything[(page - 1) * limit: page * limit]
    if as_json:
        sys.stdout.write(json.dumps({"total": len(everything), "page": page, "limit": limit, "runs": rows},
                                    indent=2) + "\n")
        return
    if not everything:
        console.print("No run is waiting on a gate.")
        return
    table = Table(show_header=True, header_style="bold")
    table.add_column("run", no_wrap=True, overflow="fold")
    for col in ("gate", "version", "waiting", "deadline in", "question"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["workflow_id"], r["gate"] or "?", str(r["gate_version"] or "?"),
                      _duration(r["waited_s"]), _duration(r["deadline_in_s"]), r["question"] or "")
    console.print(table)
    shown = f"{(page - 1) * limit + 1}-{(page - 1) * limit + len(rows)}" if rows else "none"
    more = f"; `--page {page + 1}` for more" if page * limit < len(everything) else ""
    console.print(f"{len(everything)} waiting, showing {shown}{more}. Decide with "
                  "`deepsci approve RUN --gate GATE --version N` (or reject / request-changes; several "
                  "ids or --all-pending at once).", soft_wrap=True)


@app.command("raise-budget")
def raise_budget(run_id: Annotated[str, typer.Argument(help="Run id (the `research-` prefix is optional).")],
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
