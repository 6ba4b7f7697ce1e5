"""Stack commands: `up`, `down` (the embedded stack), `worker` (a foreground worker), `slack` (the
approvals bot) and `demo` (stack up, then one auto-approved run on the sample corpus)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from deepsci.contracts import ResearchRequest
from deepsci.settings import REPO_ROOT, get_settings
from deepsci.temporal_client import connect, web_ui_link
from starter.cli.app import Json, app, console, err, fail, run_client
from starter.cli.options import switch


def _print_components(items) -> None:
    table = Table(show_header=True, header_style="bold")
    for col in ("component", "state", "where", "pid"):
        table.add_column(col)
    for c in items:
        table.add_row(c.name, c.state, c.where, str(c.pid or ""))
    console.print(table)


@app.command()
def up(no_worker: Annotated[bool, switch("--no-worker", help="Do not start a worker.")] = False,
       restart: Annotated[bool, switch("--restart", help="Restart the processes running with another "
                                                          "configuration (default: refuse and name it).")] = False):
    """Start the embedded stack in the background (idempotent): Temporal dev server, Postgres, one worker."""
    from starter import stack

    s = get_settings()
    try:
        comps = stack.up(s, with_worker=not no_worker, restart=restart)
    except stack.ConfigChanged as exc:
        fail(str(exc), code=2)
    except RuntimeError as exc:  # Temporal or Postgres did not come up, Qdrant folder taken: say which
        fail(str(exc).strip(), code=1)
    _print_components(comps)
    console.print(f"State dir: {s.home_dir}   Web UI: {s.temporal_ui_url}   Stop with `deepsci down`.")


@app.command()
def down():
    """Stop exactly what `deepsci up` started."""
    from starter import stack

    _print_components(stack.down(get_settings()))


@app.command()
def worker():
    """Run a worker in the foreground against DEEPSCI_TEMPORAL_ADDRESS (what scale-out runs)."""
    from starter.stack import qdrant_holder
    from workers.main import main as worker_main  # the one place a client starts a worker

    if (holder := qdrant_holder(get_settings())) is not None:
        fail(holder, code=2)
    worker_main()


@app.command()
def slack(
    http: Annotated[bool, switch(
        "--http", help="HTTP mode: Slack POSTs to this process (needs SLACK_SIGNING_SECRET). "
                       "Default: Socket Mode (needs SLACK_APP_TOKEN).")] = False,
    port: Annotated[int, typer.Option(help="HTTP mode: port to listen on.")] = 3000,
    host: Annotated[str, typer.Option(help="HTTP mode: address to bind (0.0.0.0: every interface).")] = "127.0.0.1",
    path: Annotated[str, typer.Option(help="HTTP mode: the Request URL path.")] = "/slack/events",
):
    """Run the Slack approvals bot: gate buttons, modals and `/research` (docs/slack.md)."""
    import logging

    from starter.slack.serve import missing_settings, run_bot

    s = get_settings()
    missing = missing_settings(s, http)
    if missing:
        mode = "HTTP mode" if http else "Socket Mode"
        fail(f"{mode} needs:\n  " + "\n  ".join(missing) + "\nSee docs/slack.md.", code=2)
    if not s.slack_channel:
        err.print("[yellow]note:[/yellow] DEEPSCI_SLACK_CHANNEL is not set: workers post no gate messages, "
                  "so there is nothing to click (/research still works).")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_bot(s, http=http, host=host, port=port, path=path)
    except Exception as exc:  # bad token (auth.test), Temporal unreachable, port taken
        hint = "\nIs Temporal up? Try `deepsci up`." if "connect" in str(exc).lower() else ""
        fail(f"the Slack bot could not start: {exc}{hint}")
    finally:
        logging.shutdown()  # main() then leaves with os._exit (grpcio aborts during finalization)


@app.command()
def demo(
    question: Annotated[str, typer.Option(help="Question to ask the sample corpus.")] =
        "How do durable agent systems avoid doing side effects twice when workers crash?",
    as_json: Json = False,
):
    """Bring the embedded stack up and run one question on the bundled corpus, auto-approving."""
    from starter import stack
    from starter.cli.runs import link_line, print_result, watch
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
            # `run`'s words, and the link on its own line (never wrapped, piped output included)
            if started.attached:
                verb = f"attached to the {started.outcome} run"
            elif started.replaced:
                verb = f"started a new run (the earlier one {started.outcome})"
            else:
                verb = "started"
            err.print(f"{verb} [bold]{wid}[/bold]", soft_wrap=True)
            link_line("web ui", web_ui_link(s, wid), to=err)
        res = await watch(started.handle, quiet=as_json)
        print_result(s, res, as_json)
        if not as_json:
            console.print("The stack keeps running for the Web UI; stop it with `deepsci down`.")

    run_client(go())
