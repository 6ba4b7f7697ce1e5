"""Reading and steering runs as reviewers and operators do: `show` (question, plan and the report
under review), `runs` (list and filter), `cancel`, `logs` (a run's history, summarised)."""

from __future__ import annotations

import json
import sys
from datetime import UTC
from typing import Annotated

import typer
from rich.markdown import Markdown
from rich.table import Table

from deepsci.settings import get_settings
from deepsci.temporal_client import connect, web_ui_link
from starter.cli.app import EXIT_REFUSED, Json, app, console, err, fail, run_client
from starter.cli.runs import link_line, print_markdown

__all__ = ["report_under_review"]

RunId = Annotated[str, typer.Argument(help="Run id (the `research-` prefix is optional).")]


def report_under_review(settings, key: str | None) -> str:
    """The Markdown of the aggregated report saved under ``key`` ('' if there is none yet)."""
    from deepsci.store import ArtifactStore

    if not key:
        return ""
    try:
        return ArtifactStore(settings.dsn).get_artifact(key).get("markdown", "")
    except KeyError:
        return ""


@app.command()
def show(run_id: RunId, as_json: Json = False,
         pager: Annotated[bool | None, typer.Option(
             "--pager/--no-pager", help="Page the report (default: only on a terminal).", metavar="")] = None):
    """Show what a reviewer decides on: the question, the plan, the report under review.

    The report (Markdown) only at the report gate, with the gate version to approve."""
    from starter.cli.lookup import find_run, has_pollers
    from starter.cli.runs import _progress

    s = get_settings()

    async def go():
        client = await connect(s)
        wid, desc = await find_run(client, run_id)
        p = await _progress(client, wid, desc, has_pollers)
        if p is None:
            fail(f"{wid} cannot be read without a worker (see the warning above)", code=EXIT_REFUSED)
        return wid, desc, p

    wid, desc, p = run_client(go())
    markdown = report_under_review(s, p.report_key)
    approve = (f"deepsci approve {wid} --gate {p.open_gate} --version {p.gate_version}"
               if p.open_gate else None)
    if as_json:
        sys.stdout.write(json.dumps({
            "workflow_id": wid, "status": desc.status.name if desc.status else None, "stage": p.stage,
            "question": p.question, "plan": p.plan, "open_gate": p.open_gate, "gate_version": p.gate_version,
            "report_key": p.report_key, "report_markdown": markdown, "approve": approve,
            "web_ui": web_ui_link(s, wid)}, indent=2, ensure_ascii=False) + "\n")
        return
    console.print(f"[bold]{wid}[/bold]  stage: {p.stage}", soft_wrap=True)
    console.print(f"[bold]question:[/bold] {p.question or '?'}")
    if p.plan:
        console.print("[bold]plan:[/bold]")
        for i, t in enumerate(p.plan):
            console.print(f"  {i + 1}. {t}")
    if markdown:
        title = "report under review" if p.open_gate == "report" else "latest report"
        console.print(f"[bold]{title}[/bold] (version {p.gate_version}):")
        use_pager = console.is_terminal if pager is None else pager
        if use_pager:
            with console.pager(styles=True):
                console.print(Markdown(markdown))
        else:
            print_markdown(markdown)
    if approve:
        console.print(f"The {p.open_gate} gate waits for a decision (version {p.gate_version}):")
        console.print(f"  {approve}", soft_wrap=True, markup=False, highlight=False)
    link_line("web ui", web_ui_link(s, wid))


@app.command("runs")
def list_runs(
    stage: Annotated[str | None, typer.Option(
        help="Only runs in this stage (e.g. awaiting-plan-approval, published, rejected, failed).")] = None,
    status: Annotated[str | None, typer.Option(
        help="Only runs with this execution status: running, completed, failed, canceled, terminated.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many, newest first.")] = 50,
    as_json: Json = False,
):
    """List research runs, newest first, with their stage (one visibility query)."""
    from workflows import search_attributes as sa

    s = get_settings()
    query = "WorkflowType = 'ResearchWorkflow'"
    if stage:
        query += f" AND {sa.STAGE.name} = {json.dumps(stage)}"
    if status:
        statuses = {"running": "Running", "completed": "Completed", "failed": "Failed", "canceled": "Canceled",
                    "cancelled": "Canceled", "terminated": "Terminated", "timed-out": "TimedOut"}
        if status.lower() not in statuses:
            fail(f"--status takes one of: {', '.join(sorted(set(statuses) - {'cancelled'}))}", code=EXIT_REFUSED)
        query += f" AND ExecutionStatus = '{statuses[status.lower()]}'"

    async def go():
        client = await connect(s)
        total = (await client.count_workflows(query)).count
        rows = []
        async for wf in client.list_workflows(query, limit=limit):
            rows.append({"workflow_id": wf.id, "status": wf.status.name.lower() if wf.status else None,
                         "stage": wf.typed_search_attributes.get(sa.STAGE),
                         "question": (await wf.memo()).get("question", ""),
                         "started_at": wf.start_time.isoformat(),
                         "closed_at": wf.close_time.isoformat() if wf.close_time else None})
        return total, rows

    total, rows = run_client(go())
    if as_json:
        sys.stdout.write(json.dumps({"total": total, "runs": rows}, indent=2) + "\n")
        return
    if not rows:
        console.print("No run matches.")
        return
    table = Table(show_header=True, header_style="bold")
    table.add_column("run", no_wrap=True, overflow="fold")
    for col in ("status", "stage", "started", "question"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["workflow_id"], r["status"] or "?", r["stage"] or "?", r["started_at"], r["question"])
    console.print(table)
    console.print(f"{len(rows)} of {total} shown.")


@app.command()
def cancel(run_id: RunId,
           reason: Annotated[str, typer.Option(help="Why (recorded when --terminate).")] = "cancelled from the CLI",
           terminate: Annotated[bool, typer.Option(
               "--terminate", help="End it at once, without letting it clean up.", metavar="")] = False):
    """Cancel a run (it ends with stage `cancelled`); --terminate ends it at once."""
    from starter.cli.lookup import find_run

    s = get_settings()

    async def go():
        client = await connect(s)
        wid, desc = await find_run(client, run_id)
        if desc.close_time is not None:
            fail(f"{wid} has already finished ({desc.status.name.lower() if desc.status else '?'})",
                 code=EXIT_REFUSED)
        handle = client.get_workflow_handle(wid)
        if terminate:
            await handle.terminate(reason=reason)
        else:
            await handle.cancel()
        return wid

    wid = run_client(go())
    console.print(f"{'terminated' if terminate else 'cancel requested for'} {wid}", soft_wrap=True)


def _event_line(event) -> str | None:
    """One line for a history event a person cares about (activities, children, timers, gates)."""
    from temporalio.api.enums.v1 import EventType

    kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
    a = event
    if kind == "ACTIVITY_TASK_SCHEDULED":
        return f"scheduled {a.activity_task_scheduled_event_attributes.activity_type.name}"
    if kind == "ACTIVITY_TASK_FAILED":
        return f"activity failed: {a.activity_task_failed_event_attributes.failure.message}"
    if kind == "ACTIVITY_TASK_TIMED_OUT":
        return "activity timed out"
    if kind == "START_CHILD_WORKFLOW_EXECUTION_INITIATED":
        return f"child {a.start_child_workflow_execution_initiated_event_attributes.workflow_id}"
    if kind == "TIMER_STARTED":
        return f"timer {a.timer_started_event_attributes.start_to_fire_timeout.seconds}s"
    if kind in ("WORKFLOW_EXECUTION_UPDATE_ACCEPTED", "WORKFLOW_EXECUTION_SIGNALED"):
        return kind.lower().replace("_", " ")
    if kind == "WORKFLOW_TASK_FAILED":
        return f"workflow task failed: {a.workflow_task_failed_event_attributes.failure.message}"
    if kind.startswith("WORKFLOW_EXECUTION_") and kind not in ("WORKFLOW_EXECUTION_STARTED",):
        attrs = {
            "WORKFLOW_EXECUTION_FAILED": lambda: a.workflow_execution_failed_event_attributes.failure.message,
            "WORKFLOW_EXECUTION_TERMINATED": lambda: a.workflow_execution_terminated_event_attributes.reason,
        }
        detail = attrs.get(kind, lambda: "")()
        return f"run {kind.removeprefix('WORKFLOW_EXECUTION_').lower()}" + (f": {detail}" if detail else "")
    if kind == "WORKFLOW_EXECUTION_STARTED":
        return "run started"
    return None


@app.command()
def logs(run_id: RunId, as_json: Json = False,
         every: Annotated[bool, typer.Option("--all", help="Every history event, not only the notable ones.",
                                             metavar="")] = False):
    """A run's history: one ISO-timestamped line per notable event (activities, children, timers, failures).

    The Web UI shows the same history in full."""
    from temporalio.api.enums.v1 import EventType

    from starter.cli.lookup import find_run

    s = get_settings()

    async def go():
        client = await connect(s)
        wid, _ = await find_run(client, run_id)
        history = await client.get_workflow_handle(wid).fetch_history()
        return wid, history.events

    wid, events = run_client(go())
    lines = []
    for e in events:
        line = _event_line(e)
        if line is None and every:
            line = EventType.Name(e.event_type).removeprefix("EVENT_TYPE_").lower()
        if line is not None:
            at = e.event_time.ToDatetime(tzinfo=UTC)
            lines.append({"at": at.isoformat(timespec="milliseconds"), "event_id": e.event_id, "what": line})
    if as_json:
        sys.stdout.write(json.dumps(lines, indent=2) + "\n")
        return
    sys.stdout.writelines(f"{x['at']}  #{x['event_id']:<4} {x['what']}\n" for x in lines)
    err.print(f"{len(lines)} events of {wid}; the Web UI:", soft_wrap=True)
    err.print(web_ui_link(s, wid), soft_wrap=True, markup=False, highlight=False)
