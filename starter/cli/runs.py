"""Run commands: `run` (start or attach, optionally wait with progress), `status`, `result`.

`run`'s request options are derived from ResearchRequest (deepsci/contracts.py): the model holds
their defaults, bounds and help; REQUEST_FLAGS only names each flag."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markdown import Markdown
from rich.table import Table

from deepsci.contracts import ResearchRequest, ResearchResult
from deepsci.observe.tracing import flush_tracing, setup_tracing, trace_url
from deepsci.settings import Settings, get_settings
from deepsci.temporal_client import connect, web_ui_link
from starter.cli.app import Json, app, console, err, fail, run_client
from starter.cli.options import model_options, refusal, switch

__all__ = ["REQUEST_FLAGS", "build_request", "watch", "print_result"]

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


def print_result(s, res: ResearchResult, as_json: bool, trace_id: str | None = None) -> None:
    from starter.runs import report_json

    doc = report_json(s, res)
    if as_json:
        doc = {**doc, "trace_id": trace_id, "trace_url": trace_url(s, trace_id)}
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
    if trace_id:
        console.print(f"[bold]trace:[/bold]  {trace_url(s, trace_id)}")


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
    *,
    fields: dict,
):
    """Start a research run (or attach to the run with the same id) and print its Web UI link."""
    from starter.runs import start_or_attach, workflow_id_for

    s = get_settings()
    req = build_request(s, question, corpus, search, reviewer, escalation_reviewer, fields)
    wid = workflow_id_for(req, id)

    async def go():
        setup_tracing(s, "deepsci-cli")
        client = await connect(s)
        started = await start_or_attach(client, s, req, wid)
        flush_tracing()  # the run's root span leaves now, not when this process exits
        link = trace_url(s, started.trace_id)
        if not as_json:
            verb = "attached to existing run" if started.attached else "started"
            err.print(f"{verb} [bold]{wid}[/bold]\nweb ui: {web_ui_link(s, wid)}"
                      + (f"\ntrace:  {link}" if link else ""))
        if not wait:
            if as_json:
                sys.stdout.write(json.dumps({"workflow_id": wid, "attached": started.attached,
                                             "web_ui": web_ui_link(s, wid), "trace_id": started.trace_id,
                                             "trace_url": link}) + "\n")
            return
        res = await watch(started.handle, quiet=as_json)
        print_result(s, res, as_json, started.trace_id)

    run_client(go())


@app.command()
def status(run_id: Annotated[str, typer.Argument(help="Workflow id.")], as_json: Json = False):
    """Show a run's stage, counts and open gate."""
    from starter.runs import trace_of
    from workflows.research import ResearchWorkflow

    s = get_settings()

    async def go():
        client = await connect(s)
        handle = client.get_workflow_handle(run_id)
        desc = await handle.describe()
        p = await handle.query(ResearchWorkflow.progress)
        trace_id = trace_of(desc.typed_search_attributes)
        if as_json:
            out = {"workflow_id": run_id, "status": desc.status.name if desc.status else None,
                   **p.model_dump(mode="json"), "trace_id": trace_id, "trace_url": trace_url(s, trace_id)}
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
        if trace_id:
            table.add_row("trace", str(trace_url(s, trace_id)))
        console.print(table)

    run_client(go())


@app.command()
def result(run_id: str,
           as_json: Annotated[bool, switch("--json", help="Print the report contract as JSON.")] = False,
           wait: Annotated[bool, switch("--wait", help="Wait if the run is still going.")] = False):
    """Print a finished run's report (or its status if it is still going)."""
    from temporalio.client import WorkflowExecutionStatus

    from starter.runs import trace_of

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
        print_result(s, res, as_json, trace_of(desc.typed_search_attributes))

    run_client(go())
