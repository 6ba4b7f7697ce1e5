"""`deepsci`: start, watch, approve and read research runs; bring the embedded stack up and down."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from deepsci.contracts import GateDecision, ResearchRequest, ResearchResult
from deepsci.settings import REPO_ROOT, get_settings
from deepsci.temporal_client import connect, web_ui_link

app = typer.Typer(
    help="DeepScientist: durable research pipelines on Temporal.\n\n"
    "Quick start: `deepsci demo` (starts the embedded stack and runs a question on the sample corpus).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)

Gate = Annotated[str, typer.Option("--gate", "-g", help="plan or report")]


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _run(coro):
    """Run a client coroutine; server refusals become one readable line, not a traceback."""
    from temporalio.service import RPCError, RPCStatusCode

    try:
        return asyncio.run(coro)
    except RPCError as exc:
        if "already completed" in exc.message:
            _fail("the run has already finished; `deepsci result ID` shows how it ended", code=2)
        if exc.status == RPCStatusCode.NOT_FOUND:
            _fail(f"no such run: {exc.message}", code=4)
        _fail(f"Temporal refused: {exc.message}")
    except RuntimeError as exc:  # connection failures from the client carry a readable message
        if "connect" in str(exc).lower():
            _fail(f"{exc}\nIs the stack up? Try `deepsci up`.")
        raise


# ------------------------------------------------------------------ stack


def _print_components(items) -> None:
    table = Table(show_header=True, header_style="bold")
    for col in ("component", "state", "where", "pid"):
        table.add_column(col)
    for c in items:
        table.add_row(c.name, c.state, c.where, str(c.pid or ""))
    console.print(table)


@app.command()
def up(no_worker: Annotated[bool, typer.Option("--no-worker", help="Do not start a worker.")] = False):
    """Start the embedded stack in the background (idempotent): Temporal dev server, Postgres, one worker."""
    from starter import stack

    s = get_settings()
    _print_components(stack.up(s, with_worker=not no_worker))
    console.print(f"State dir: {s.home_dir}   Web UI: {s.temporal_ui_url}   Stop with `deepsci down`.")


@app.command()
def down():
    """Stop exactly what `deepsci up` started."""
    from starter import stack

    _print_components(stack.down(get_settings()))


@app.command()
def worker():
    """Run a worker in the foreground against DEEPSCI_TEMPORAL_ADDRESS (what scale-out runs)."""
    from workers.main import main as worker_main

    worker_main()


@app.command()
def slack(
    http: Annotated[bool, typer.Option(
        "--http", help="HTTP mode: Slack POSTs to this process (needs SLACK_SIGNING_SECRET). "
                       "Default: Socket Mode (needs SLACK_APP_TOKEN).")] = False,
    port: Annotated[int, typer.Option(help="HTTP mode: port to listen on.")] = 3000,
    host: Annotated[str, typer.Option(help="HTTP mode: address to bind.")] = "0.0.0.0",
    path: Annotated[str, typer.Option(help="HTTP mode: the Request URL path.")] = "/slack/events",
):
    """Run the Slack approvals bot: gate buttons, modals and `/research` (docs/slack.md)."""
    import logging

    from deepsci.slack.serve import missing_settings, run_bot

    s = get_settings()
    missing = missing_settings(s, http)
    if missing:
        mode = "HTTP mode" if http else "Socket Mode"
        _fail(f"{mode} needs:\n  " + "\n  ".join(missing) + "\nSee docs/slack.md.", code=2)
    if not s.slack_channel:
        err.print("[yellow]note:[/yellow] DEEPSCI_SLACK_CHANNEL is not set: workers post no gate messages, "
                  "so there is nothing to click (/research still works).")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_bot(s, http=http, host=host, port=port, path=path)
    except Exception as exc:  # bad token (auth.test), Temporal unreachable, port taken
        hint = "\nIs Temporal up? Try `deepsci up`." if "connect" in str(exc).lower() else ""
        _fail(f"the Slack bot could not start: {exc}{hint}")
    finally:
        logging.shutdown()  # main() then leaves with os._exit (grpcio aborts during finalization)


# ------------------------------------------------------------------ runs


def _request(question: str, corpus: Path | None, max_sub_questions: int, max_sources: int,
             max_rounds: int, gate_deadline: float, deadline_policy: str, auto_approve: bool,
             reviewers: list[str] | None, reminder_interval: float = 4 * 3600,
             escalation_reviewers: list[str] | None = None, search: str = "local",
             budget_usd: float | None = None, max_llm_calls: int | None = None,
             budget_wait: float = 24 * 3600, quota_park: float = 900) -> ResearchRequest:
    if corpus is not None and not corpus.is_dir():
        _fail(f"corpus folder not found: {corpus}")
    from deepsci.search_providers import WEB_PROVIDERS

    providers = [p.strip() for p in search.split(",") if p.strip()]
    unknown = [p for p in providers if p not in ("local", *WEB_PROVIDERS)]
    if not providers or unknown:
        _fail(f"--search takes a comma-separated list of: local, {', '.join(WEB_PROVIDERS)}")
    return ResearchRequest(
        search=providers,
        question=question, corpus=str(corpus.resolve()) if corpus else None,
        max_sub_questions=max_sub_questions, max_sources_per_sub_question=max_sources,
        max_revision_rounds=max_rounds, gate_deadline_s=gate_deadline,
        deadline_policy=deadline_policy, auto_approve=auto_approve,
        allowed_reviewers=reviewers or get_settings().reviewers, reminder_interval_s=reminder_interval,
        escalation_reviewers=escalation_reviewers or get_settings().escalation_reviewers,
        budget_usd=budget_usd, max_llm_calls=max_llm_calls, budget_wait_s=budget_wait,
        quota_park_s=quota_park,
    )


async def _watch(handle, quiet: bool) -> ResearchResult:
    """Wait for the result, showing stage-by-stage progress from the `progress` query."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from workflows.research import ResearchWorkflow

    result_task = asyncio.ensure_future(handle.result())
    if quiet:
        return await result_task
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=False) as bars:
        stage = bars.add_task("stage: starting", total=None)
        subq = bars.add_task("sub-questions", total=None)
        srcs = bars.add_task("sources parsed", total=None)
        gate_told = None
        while not result_task.done():
            try:
                p = await handle.query(ResearchWorkflow.progress)
            except Exception:  # noqa: BLE001 - not yet started, or between tasks
                p = None
            if p is not None:
                extra = f" (gate {p.open_gate} open)" if p.open_gate else ""
                if p.llm_calls:
                    extra += f"  [{p.llm_calls} model calls, ${p.cost_usd:.4f}]"
                bars.update(stage, description=f"stage: {p.stage}{extra}")
                bars.update(subq, total=p.sub_questions_total or None, completed=p.sub_questions_done)
                bars.update(srcs, total=p.sources_found or None,
                            completed=p.sources_parsed + p.sources_failed,
                            description=f"sources parsed ({p.sources_failed} failed, "
                                        f"{p.chunks_indexed} chunks)")
                if p.budget_stop and gate_told != ("budget", p.llm_calls):
                    gate_told = ("budget", p.llm_calls)
                    bars.console.print(f"Stopped by its budget: {p.budget_stop}. Raise it with "
                                       f"`deepsci raise-budget {handle.id} --usd N` or `--calls N`.")
                if p.open_gate and gate_told != (p.open_gate, p.gate_version):
                    gate_told = (p.open_gate, p.gate_version)
                    bars.console.print(
                        f"Waiting for a decision on the [bold]{p.open_gate}[/bold] gate "
                        f"(version {p.gate_version}): `deepsci approve {handle.id} --gate {p.open_gate} "
                        f"--version {p.gate_version}` or `deepsci reject ...`")
            await asyncio.wait([result_task], timeout=0.5)
        bars.update(stage, description="stage: done")
    return await result_task


def _print_result(s, res: ResearchResult, as_json: bool) -> None:
    from starter.runs import report_json

    doc = report_json(s, res)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
        return
    if doc["report_markdown"]:
        console.print(Markdown(doc["report_markdown"]))
    console.print(f"[bold]status:[/bold] {res.status}  {res.message}")
    st = res.stats
    console.print(f"sources {st.sources_found} found, {st.sources_parsed} parsed, {st.sources_failed} failed; "
                  f"{st.chunks_indexed} chunks; {st.llm_calls} engine calls; {st.duration_s:.1f}s")
    if st.tokens_in or st.cost_usd or st.citations_dropped:
        console.print(f"model: {st.tokens_in} tokens in, {st.tokens_out} out, ${st.cost_usd:.4f}; "
                      f"{st.citations_dropped} citations dropped (quote not in its source)")
    if res.report_path:
        console.print(f"[bold]report:[/bold] {res.report_path}")
    console.print(f"[bold]web ui:[/bold] {web_ui_link(s, res.workflow_id)}")


@app.command()
def run(
    question: Annotated[str, typer.Argument(help="The research question.")],
    corpus: Annotated[Path | None, typer.Option(help="Folder searched by the local provider.")] = None,
    id: Annotated[str | None, typer.Option("--id", help="Run id (becomes research-<id>).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the result, showing progress.")] = False,
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="Approve both gates as reviewer `auto`.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")] = False,
    max_sub_questions: Annotated[int, typer.Option(min=1, max=12)] = 4,
    max_sources: Annotated[int, typer.Option(help="Sources per sub-question.", min=1, max=25)] = 4,
    max_rounds: Annotated[int, typer.Option(help="Revision rounds at most.", min=0, max=5)] = 1,
    gate_deadline: Annotated[float, typer.Option(help="Seconds a gate waits for a decision.")] = 86400,
    deadline_policy: Annotated[str, typer.Option(
        help="reject, approve or escalate at the deadline (escalate: notify the escalation "
             "reviewers, extend the deadline once, then reject).")] = "reject",
    reviewer: Annotated[list[str] | None, typer.Option(
        help="Allowed reviewer (repeatable); default DEEPSCI_REVIEWERS, else anyone.")] = None,
    reminder_interval: Annotated[float, typer.Option(
        help="Seconds between reminders while a gate waits.", min=1)] = 4 * 3600,
    escalation_reviewer: Annotated[list[str] | None, typer.Option(
        help="Notified at the deadline with --deadline-policy escalate (repeatable); default "
             "DEEPSCI_ESCALATION_REVIEWERS.")] = None,
    search: Annotated[str, typer.Option(
        help="Search providers in fallback order: local, searxng, arxiv, brave, tavily.")] = "local",
    budget_usd: Annotated[float | None, typer.Option(
        "--budget-usd", help="Stop before a model call would take the run's cost past this (USD).", min=0)] = None,
    max_llm_calls: Annotated[int | None, typer.Option(
        "--max-llm-calls", help="Stop before model call number N+1.", min=1)] = None,
    budget_wait: Annotated[float, typer.Option(
        help="Seconds a run stopped by its budget waits for `deepsci raise-budget` before it ends "
             "with its partial report.", min=1)] = 24 * 3600,
    quota_park: Annotated[float, typer.Option(
        help="Seconds a run parks when the model provider says its quota is exhausted, before it "
             "tries again.", min=1)] = 900,
):
    """Start a research run (or attach to the run with the same id) and print its Web UI link."""
    from starter.runs import start_or_attach, workflow_id_for

    if deadline_policy not in ("reject", "approve", "escalate"):
        _fail("--deadline-policy takes reject, approve or escalate")
    s = get_settings()
    req = _request(question, corpus, max_sub_questions, max_sources, max_rounds, gate_deadline,
                   deadline_policy, auto_approve, reviewer, reminder_interval, escalation_reviewer, search,
                   budget_usd or None, max_llm_calls, budget_wait, quota_park)
    wid = workflow_id_for(req, id)

    async def go():
        client = await connect(s)
        started = await start_or_attach(client, s, req, wid)
        if not as_json:
            verb = "attached to existing run" if started.attached else "started"
            err.print(f"{verb} [bold]{wid}[/bold]\nweb ui: {web_ui_link(s, wid)}")
        if not wait:
            if as_json:
                sys.stdout.write(json.dumps({"workflow_id": wid, "attached": started.attached,
                                             "web_ui": web_ui_link(s, wid)}) + "\n")
            return
        res = await _watch(started.handle, quiet=as_json)
        _print_result(s, res, as_json)

    _run(go())


@app.command()
def status(run_id: Annotated[str, typer.Argument(help="Workflow id.")],
           as_json: Annotated[bool, typer.Option("--json")] = False):
    """Show a run's stage, counts and open gate."""
    from workflows.research import ResearchWorkflow

    s = get_settings()

    async def go():
        client = await connect(s)
        handle = client.get_workflow_handle(run_id)
        desc = await handle.describe()
        p = await handle.query(ResearchWorkflow.progress)
        if as_json:
            out = {"workflow_id": run_id, "status": desc.status.name if desc.status else None,
                   **p.model_dump(mode="json")}
            sys.stdout.write(json.dumps(out, indent=2) + "\n")
            return
        table = Table(show_header=False)
        table.add_row("run", run_id)
        table.add_row("status", desc.status.name if desc.status else "?")
        for k, v in p.model_dump(exclude={"plan", "decisions"}).items():
            table.add_row(k, str(v))
        table.add_row("plan", "\n".join(f"{i + 1}. {t}" for i, t in enumerate(p.plan)))
        for d in p.decisions:
            table.add_row("decision", f"{d.gate}: {d.decision} by {d.reviewer} {d.comment}")
        table.add_row("web ui", web_ui_link(s, run_id))
        console.print(table)

    _run(go())


def _decide(run_id: str, gate: str, decision: str, comment: str, reviewer: str | None,
            plan: list[str] | None, as_json: bool, version: int | None = None) -> None:

    from workflows.research import ResearchWorkflow

    if gate not in ("plan", "report"):
        _fail("--gate takes plan or report")
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
            reason = exc.cause.message if getattr(exc.cause, "message", None) else str(exc.cause)
            if as_json:
                sys.stdout.write(json.dumps({"accepted": False, "reason": reason}) + "\n")
            _fail(f"{refused}: {reason}", code=2)
        if as_json:
            sys.stdout.write(out.model_dump_json() + "\n")
        else:
            console.print(describe(out))

    _run(go())


@app.command("raise-budget")
def raise_budget(run_id: str,
                 usd: Annotated[float | None, typer.Option("--usd", help="New budget in USD.", min=0)] = None,
                 calls: Annotated[int | None, typer.Option("--calls", help="New max_llm_calls.", min=1)] = None,
                 reviewer: Annotated[str | None, typer.Option(help="Who raises it (default: $USER).")] = None,
                 as_json: Annotated[bool, typer.Option("--json")] = False):
    """Raise a run's budget (cost and/or model calls); a run stopped by its budget resumes."""

    from deepsci.contracts import BudgetRaise
    from workflows.research import ResearchWorkflow

    if usd is None and calls is None:
        _fail("give --usd and/or --calls")
    if usd is not None and usd <= 0:
        _fail("--usd takes a budget above 0")
    s = get_settings()
    payload = BudgetRaise(budget_usd=usd or None, max_llm_calls=calls,
                          reviewer=reviewer or getpass.getuser() or "cli")

    _update(s, run_id, ResearchWorkflow.raise_budget, payload, as_json, "budget change refused",
            lambda st: f"{st.message}: budget ${st.budget_usd}, max_llm_calls {st.max_llm_calls}; "
                       f"spent ${st.cost_usd:.6f} in {st.llm_calls} calls")


Version = Annotated[int | None, typer.Option(
    "--version", help="The gate_version you reviewed (`deepsci status`/`pending`); a decision on an "
                      "older plan or report is refused.")]


@app.command()
def approve(run_id: str, gate: Gate,
            comment: Annotated[str, typer.Option(help="Why.")] = "",
            reviewer: Annotated[str | None, typer.Option(help="Reviewer name (default: $USER).")] = None,
            plan: Annotated[list[str] | None, typer.Option(help="Edited sub-question (repeatable; plan gate).")] = None,
            version: Version = None,
            as_json: Annotated[bool, typer.Option("--json")] = False):
    """Approve the open gate (the plan gate optionally with an edited plan)."""
    _decide(run_id, gate, "approve", comment, reviewer, plan, as_json, version)


@app.command()
def reject(run_id: str, gate: Gate,
           comment: Annotated[str, typer.Option(help="Why.")] = "",
           reviewer: Annotated[str | None, typer.Option(help="Reviewer name (default: $USER).")] = None,
           version: Version = None,
           as_json: Annotated[bool, typer.Option("--json")] = False):
    """Reject the open gate; the run ends with status `rejected`."""
    _decide(run_id, gate, "reject", comment, reviewer, None, as_json, version)


@app.command("request-changes")
def request_changes(run_id: str,
                    comment: Annotated[str, typer.Option(help="What to change.")],
                    reviewer: Annotated[str | None, typer.Option(help="Reviewer name.")] = None,
                    version: Version = None,
                    as_json: Annotated[bool, typer.Option("--json")] = False):
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
def pending(gate: Annotated[str | None, typer.Option("--gate", "-g", help="Only plan or report.")] = None,
            queue: Annotated[str | None, typer.Option(
                "--queue", help="Only runs on this workflow task queue (e.g. deepsci-workflows).")] = None,
            limit: Annotated[int, typer.Option(min=1)] = 200,
            as_json: Annotated[bool, typer.Option("--json")] = False):
    """List runs waiting on a gate, with how long each has waited and when its deadline falls."""
    if gate is not None and gate not in ("plan", "report"):
        _fail("--gate takes plan or report")
    s = get_settings()

    async def go():
        client = await connect(s)
        return await pending_runs(client, gate, queue, limit)

    rows = _run(go())
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


@app.command()
def result(run_id: str,
           as_json: Annotated[bool, typer.Option("--json", help="Print the report contract as JSON.")] = False,
           wait: Annotated[bool, typer.Option("--wait", help="Wait if the run is still going.")] = False):
    """Print a finished run's report (or its status if it is still going)."""
    from temporalio.client import WorkflowExecutionStatus

    s = get_settings()

    async def go():
        client = await connect(s)
        handle = client.get_workflow_handle(run_id, result_type=ResearchResult)
        desc = await handle.describe()
        if desc.status == WorkflowExecutionStatus.RUNNING and not wait:
            msg = {"workflow_id": run_id, "status": "running"}
            if as_json:
                sys.stdout.write(json.dumps(msg) + "\n")
            else:
                console.print(f"{run_id} is still running; `deepsci status {run_id}` or add --wait.")
            raise typer.Exit(3)
        res = await handle.result()
        _print_result(s, res, as_json)

    _run(go())


@app.command()
def demo(
    question: Annotated[str, typer.Option(help="Question to ask the sample corpus.")] =
        "How do durable agent systems avoid doing side effects twice when workers crash?",
    as_json: Annotated[bool, typer.Option("--json")] = False,
):
    """Bring the embedded stack up and run one question on the bundled corpus, auto-approving."""
    from starter import stack
    from starter.runs import start_or_attach, workflow_id_for

    s = get_settings()
    comps = stack.up(s)
    if not as_json:
        _print_components(comps)
    req = ResearchRequest(question=question, corpus=str(REPO_ROOT / "evals" / "corpus"), auto_approve=True)
    wid = workflow_id_for(req)

    async def go():
        client = await connect(s)
        started = await start_or_attach(client, s, req, wid)
        if not as_json:
            err.print(f"{'attached to' if started.attached else 'started'} [bold]{wid}[/bold]")
            err.print(f"web ui: {web_ui_link(s, wid)}")
        res = await _watch(started.handle, quiet=as_json)
        _print_result(s, res, as_json)
        if not as_json:
            console.print("The stack keeps running for the Web UI; stop it with `deepsci down`.")

    _run(go())


@app.command("eval")
def eval_cmd(
    dataset: Annotated[Path, typer.Argument(help="Dataset JSON (see evals/datasets/).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    concurrency: Annotated[int, typer.Option(min=1, max=16)] = 3,
):
    """Run every question of a dataset and print source recall, citation validity and fact coverage."""
    from evals.runner import print_table, run_dataset

    s = get_settings()
    if not dataset.is_file():
        _fail(f"dataset not found: {dataset}")
    report = _run(run_dataset(s, dataset, concurrency=concurrency, progress=not as_json))
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        print_table(console, report)


@app.command()
def replay(
    run_id: Annotated[str | None, typer.Argument(help="Replay this run's history from the server.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay recent runs from the server.")] = False,
    file: Annotated[list[Path] | None, typer.Option("--file", help="A saved history JSON (repeatable).")] = None,
    limit: Annotated[int, typer.Option(help="How many recent runs with --all.")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
):
    """Replay histories against the current workflow code; exit 1 on non-determinism."""
    from starter.replay import fetch_histories, load_history_file, replay_histories

    if not (run_id or all_ or file):
        _fail("give a run id, --all or --file")

    async def go():
        histories = [load_history_file(f) for f in file or []]
        if run_id or all_:
            client = await connect(get_settings())
            histories += await fetch_histories(client, run_id, limit)
        return await replay_histories(histories)

    outcomes = _run(go())
    if as_json:
        sys.stdout.write(json.dumps([o.__dict__ for o in outcomes], indent=2) + "\n")
    else:
        for o in outcomes:
            mark = "[green]ok[/green]  " if o.ok else "[red]FAIL[/red]"
            console.print(f"{mark} {o.workflow_type} {o.workflow_id} {o.error}")
        bad = sum(not o.ok for o in outcomes)
        console.print(f"{len(outcomes)} replayed, {bad} non-deterministic")
    if any(not o.ok for o in outcomes):
        raise typer.Exit(1)


def main() -> None:
    """Run the CLI, then leave without interpreter finalization.

    grpcio (loaded by temporalio's API modules) can abort the process while Python finalizes
    ("PyGILState_Release ... finalizing", exit 134) after a command has already succeeded; the
    exit code must be the command's, so flush and leave directly.
    """
    import os

    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            err.print(exc.code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()

from starter.ingest_cmd import ingest  # noqa: E402 - the lead moves this into the CLI package

app.command()(ingest)
