"""Run commands: `run` (start or attach, optionally wait with progress), `status`, `result`.

`run`'s request options are derived from ResearchRequest (deepsci/contracts.py): the model holds
their defaults, bounds and help; REQUEST_FLAGS only names each flag."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markdown import Markdown
from rich.table import Table
from temporalio.client import WorkflowExecutionStatus

from deepsci.contracts import Progress, ResearchRequest, ResearchResult
from deepsci.observe.tracing import flush_tracing, setup_tracing, trace_url
from deepsci.settings import Settings, get_settings
from deepsci.temporal_client import connect, web_ui_link
from starter.cli.app import EXIT_REFUSED, EXIT_RUN_FAILED, EXIT_RUNNING, Json, app, console, err, fail, run_client
from starter.cli.options import model_options, refusal, switch

__all__ = ["REQUEST_FLAGS", "build_request", "watch", "print_result", "link_line"]

# `deepsci run` parameter -> ResearchRequest field. The flag is the parameter with dashes
# (`max_sources` -> `--max-sources`); its type, default, bounds and help come from the field.
REQUEST_FLAGS = {
    "auto_approve": "auto_approve",
    "max_sub_questions": "max_sub_questions",
    "max_sources": "max_sources_per_sub_question",
    "max_rounds": "max_revision_rounds",
    "gate_deadline": "gate_deadline_s",
    "deadline_policy": "deadline_policy",
    "reminder_interval": "reminder_interval_s",
    "budget_usd": "budget_usd",
    "max_llm_calls": "max_llm_calls",
    "budget_wait": "budget_wait_s",
    "quota_park": "quota_park_s",
}
_FIELDS = ResearchRequest.model_fields


def build_request(settings: Settings, question: str, corpus: Path | None, search: str,
                  reviewers: list[str] | None, escalation_reviewers: list[str] | None,
                  fields: dict) -> ResearchRequest:
    """The request from the CLI's values; the options whose CLI form differs from the field's
    (a folder that must exist, a comma list, reviewers defaulting to settings) are converted here,
    and every bound is the model's. A refusal is one line and exit code 2."""
    if corpus is not None and not corpus.is_dir():
        fail(f"corpus folder not found: {corpus}")
    from deepsci.search_providers import WEB_PROVIDERS

    providers = [p.strip() for p in search.split(",") if p.strip()]
    unknown = [p for p in providers if p not in ("local", *WEB_PROVIDERS)]
    if not providers or unknown:
        fail(f"--search takes a comma-separated list of: local, {', '.join(WEB_PROVIDERS)}")
    try:
        return ResearchRequest(
            question=question, corpus=str(corpus.resolve()) if corpus else None, search=providers,
            allowed_reviewers=reviewers or settings.reviewers,
            escalation_reviewers=escalation_reviewers or settings.escalation_reviewers, **fields)
    except ValidationError as exc:
        fail(refusal(exc, REQUEST_FLAGS), code=2)
        raise  # not reached: fail() exits


async def watch(handle, quiet: bool) -> ResearchResult:
    """Wait for the result, showing stage-by-stage progress from the `progress` query."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from workflows.research import ResearchWorkflow

    result_task = asyncio.ensure_future(handle.result())
    if quiet:
        return await result_task
    from rich.text import Text

    class Count(MofNCompleteColumn):
        """`3/5`, and nothing for the stage row, which has no total (not `0/?`)."""

        def render(self, task):
            return Text("") if task.total is None else super().render(task)

    with Progress(TextColumn("{task.description}"), BarColumn(), Count(),
                  TimeElapsedColumn(), console=err, transient=False) as bars:
        stage = bars.add_task("stage: starting", total=None)
        # Shown once their totals are known (a bar with no total reads `0/?`).
        subq = bars.add_task("sub-questions", total=None, visible=False)
        srcs = bars.add_task("sources parsed", total=None, visible=False)
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
                bars.update(subq, total=p.sub_questions_total or None, completed=p.sub_questions_done,
                            visible=bool(p.sub_questions_total))
                bars.update(srcs, total=p.sources_found or None, visible=bool(p.sources_found),
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
        exc = result_task.exception()
        ended = "failed" if exc else result_task.result().status.replace("_", "-")
        bars.update(stage, description=f"stage: {ended}")
    return await result_task


def print_result(s, res: ResearchResult, as_json: bool, trace_id: str | None = None) -> None:
    from starter.runs import report_json

    doc = report_json(s, res)
    if as_json:
        doc = {**doc, "trace_id": trace_id, "trace_url": trace_url(s, trace_id)}
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
        return
    if doc["report_markdown"]:
        print_markdown(doc["report_markdown"])
    note = f"  {res.message}" if res.message and res.message != res.status else ""
    console.print(f"[bold]status:[/bold] {res.status}{note}")
    st = res.stats
    console.print(f"sources {st.sources_found} found, {st.sources_parsed} parsed, {st.sources_failed} failed; "
                  f"{st.chunks_indexed} chunks; {st.llm_calls} engine calls; {st.duration_s:.1f}s")
    if st.tokens_in or st.cost_usd or st.citations_dropped or st.claims_unsupported:
        console.print(f"model: {st.tokens_in} tokens in, {st.tokens_out} out, ${st.cost_usd:.4f}; "
                      f"{st.citations_dropped} citations dropped (quote not in its source); "
                      f"{st.claims_unsupported} claims dropped (not supported by their quote)")
    if res.report_path:
        link_line("report", res.report_path)
    link_line("web ui", web_ui_link(s, res.workflow_id))
    if trace_id:
        link_line("trace", str(trace_url(s, trace_id)))


def print_markdown(markdown: str) -> None:
    """A report on a terminal rendered by Rich; piped, the Markdown itself, its lines and links as
    written (Rich would reflow them at 80 columns and break the file:// links)."""
    if console.is_terminal:
        console.print(Markdown(markdown))
    else:
        console.print(markdown, markup=False, highlight=False, soft_wrap=True)


def link_line(label: str, link: str, to=None) -> None:
    """``label:`` then the link on its own line, never wrapped or cut (piped output included), so
    it stays one clickable, copyable string."""
    (to or console).print(f"[bold]{label}:[/bold]")
    (to or console).print(link, soft_wrap=True, highlight=False, markup=False)


@app.command()
@model_options(ResearchRequest, REQUEST_FLAGS)
def run(
    question: Annotated[str, typer.Argument(help="The research question.")],
    corpus: Annotated[Path | None, typer.Option(help=_FIELDS["corpus"].description)] = None,
    id: Annotated[str | None, typer.Option("--id", help="Run id (becomes research-<id>).")] = None,
    wait: Annotated[bool, switch("--wait", help="Wait for the result, showing progress.")] = False,
    as_json: Json = False,
    reviewer: Annotated[list[str] | None, typer.Option(
        help="Allowed reviewer (repeatable); default DEEPSCI_REVIEWERS, else anyone.")] = None,
    escalation_reviewer: Annotated[list[str] | None, typer.Option(
        help="Notified at the deadline with --deadline-policy escalate (repeatable); default "
             "DEEPSCI_ESCALATION_REVIEWERS.")] = None,
    search: Annotated[str, typer.Option(
        help=f"{_FIELDS['search'].description} Comma-separated: local, searxng, arxiv, brave, tavily.")
    ] = "local",
    new: Annotated[bool, switch("--new", help="Start a new run even if the same question and options "
                                              "already published one.")] = False,
    attach: Annotated[bool, switch("--attach", help="Attach to the earlier run with this id whatever "
                                                    "its ending (failed, rejected, ...); never start one.")] = False,
    *,
    fields: dict,
):
    """Start a research run and print its Web UI link.

    The same question with the same options attaches to the run already going or published; after
    a run that failed, was rejected, cancelled or terminated, or with other options, a new run starts.
    """
    from starter.preflight import provider_problems
    from starter.runs import start_or_attach, workflow_id_for

    if new and attach:
        fail("--new and --attach exclude each other", code=EXIT_REFUSED)
    s = get_settings()
    req = build_request(s, question, corpus, search, reviewer, escalation_reviewer, fields)
    problems = provider_problems(s, req.search)
    if problems:
        fail("search provider not usable: " + "; ".join(problems), code=EXIT_REFUSED)
    try:
        wid = workflow_id_for(req, id)
    except ValueError as exc:  # an overlong --id: refused before anything starts
        fail(str(exc), code=EXIT_REFUSED)

    async def go():
        from starter.cli.lookup import warn_if_no_worker

        setup_tracing(s, "deepsci-cli")
        client = await connect(s)
        started = await start_or_attach(client, s, req, wid, "new" if new else "attach" if attach else "auto")
        flush_tracing()  # the run's root span leaves now, not when this process exits
        link = trace_url(s, started.trace_id)
        if not as_json:
            if started.attached:
                verb = f"attached to the {started.outcome} run"
                hint = " (--new asks again)" if started.outcome != "running" else ""
            elif started.replaced:
                verb, hint = "started a new run", f" (the earlier one {started.outcome}; --attach reads it)"
            else:
                verb, hint = "started", ""
            err.print(f"{verb} [bold]{wid}[/bold]{hint}", soft_wrap=True)
            link_line("web ui", web_ui_link(s, wid), to=err)
            if link:
                link_line("trace", link, to=err)
        if started.status == WorkflowExecutionStatus.RUNNING:
            await warn_if_no_worker(client, s)
        if not wait:
            if as_json:
                sys.stdout.write(json.dumps({"workflow_id": wid, "attached": started.attached,
                                             "earlier_outcome": started.outcome,
                                             "web_ui": web_ui_link(s, wid), "trace_id": started.trace_id,
                                             "trace_url": link}) + "\n")
            return
        res = await _finished(watch(started.handle, quiet=as_json))
        print_result(s, res, as_json, started.trace_id)

    run_client(go())


async def _finished(waiting) -> ResearchResult:
    """The run's result; a failed run exits 5 with one line (the cause and its fix)."""
    from temporalio.client import WorkflowFailureError

    from starter.cli.app import OPTIONS
    from starter.cli.failures import explain

    try:
        return await waiting
    except WorkflowFailureError as exc:
        if OPTIONS["verbose"]:
            err.print_exception()
        fail(explain(exc), code=EXIT_RUN_FAILED)
        raise  # not reached: fail() exits


def _stamp(v: object) -> str:
    return v.isoformat() if isinstance(v, datetime) else str(v)


@app.command()
def status(run_id: Annotated[str, typer.Argument(help="Run id (the `research-` prefix is optional).")],
           as_json: Json = False):
    """Show a run's question, stage, counts and open gate (`deepsci show` adds the report under review)."""
    from starter.cli.lookup import find_run, has_pollers
    from starter.runs import trace_of

    s = get_settings()

    async def go():
        client = await connect(s)
        wid, desc = await find_run(client, run_id)
        p = await _progress(client, wid, desc, has_pollers)
        out = {"workflow_id": wid, "status": desc.status.name if desc.status else None,
               "run_id": desc.run_id, "started_at": _stamp(desc.start_time),
               "closed_at": _stamp(desc.close_time) if desc.close_time else None,
               **(p.model_dump(mode="json") if p else {"stage": (await _memo(desc)).get("stage")}),
               "web_ui": web_ui_link(s, wid), "trace_id": trace_of(desc.typed_search_attributes)}
        out["trace_url"] = trace_url(s, out["trace_id"])
        if as_json:
            sys.stdout.write(json.dumps(out, indent=2) + "\n")
            return
        table = Table(show_header=False)
        table.add_row("run", wid)
        table.add_row("status", out["status"] or "?")
        if p is None:
            table.add_row("stage", str(out["stage"] or "?"))
        else:
            table.add_row("question", p.question or "?")
            for k, v in p.model_dump(exclude={"plan", "decisions", "question", "report_key"}).items():
                if v is not None:
                    table.add_row(k, _stamp(v))
            table.add_row("plan", "\n".join(f"{i + 1}. {t}" for i, t in enumerate(p.plan)))
            for d in p.decisions:
                table.add_row("decision", f"{d.gate}: {d.decision} by {d.reviewer} at {_stamp(d.at)} {d.comment}")
        table.add_row("started", out["started_at"])
        console.print(table)
        link_line("web ui", out["web_ui"])
        if out["trace_url"]:
            link_line("trace", str(out["trace_url"]))

    run_client(go())


async def _memo(desc) -> dict:
    try:
        return await desc.memo() or {}
    except Exception:  # noqa: BLE001 - a memo this CLI did not write
        return {}


async def _progress(client, wid: str, desc, has_pollers) -> Progress | None:
    """The `progress` query, or None at once (with the fix) when no worker could answer it."""
    from temporalio.service import RPCError

    from workflows.research import ResearchWorkflow

    queue = desc.task_queue
    if not await has_pollers(client, queue):
        err.print(f"[yellow]warning:[/yellow] no worker polls task queue {queue}, so the run cannot answer "
                  "(and a running one does not move). Start one with `deepsci up` or `deepsci worker`.",
                  soft_wrap=True)
        return None
    try:
        return await client.get_workflow_handle(wid, run_id=desc.run_id).query(
            ResearchWorkflow.progress, rpc_timeout=timedelta(seconds=15))
    except RPCError as exc:
        err.print(f"[yellow]warning:[/yellow] the run did not answer: {exc.message}", soft_wrap=True)
        return None


@app.command()
def result(run_id: Annotated[str, typer.Argument(help="Run id (the `research-` prefix is optional).")],
           as_json: Annotated[bool, switch("--json", help="Print the report contract as JSON.")] = False,
           wait: Annotated[bool, switch("--wait", help="Wait if the run is still going.")] = False):
    """Print a finished run's report (exit 3 if it is still going; `deepsci show` reads the one under review)."""
    from temporalio.client import WorkflowExecutionStatus

    from starter.cli.lookup import find_run
    from starter.runs import trace_of

    s = get_settings()

    async def go():
        client = await connect(s)
        wid, desc = await find_run(client, run_id)
        handle = client.get_workflow_handle(wid, result_type=ResearchResult)
        if desc.status == WorkflowExecutionStatus.RUNNING and not wait:
            msg = {"workflow_id": wid, "status": "running"}
            if as_json:
                sys.stdout.write(json.dumps(msg) + "\n")
            else:
                console.print(f"{wid} is still running; `deepsci show {wid}` shows its plan and the report "
                              "under review, or add --wait.", soft_wrap=True)
            raise typer.Exit(EXIT_RUNNING)
        res = await _finished(handle.result())
        print_result(s, res, as_json, trace_of(desc.typed_search_attributes))

    run_client(go())
