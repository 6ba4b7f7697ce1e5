"""Tool commands: `replay` (histories against the current workflow code) and `eval` (a dataset
through the real pipeline, scored)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from deepsci.settings import get_settings
from deepsci.temporal_client import connect
from starter.cli.app import Json, app, console, fail, run_client
from starter.cli.options import switch


@app.command()
def replay(
    run_id: Annotated[str | None, typer.Argument(help="Replay this run's history from the server.")] = None,
    all_: Annotated[bool, switch("--all", help="Replay recent runs from the server.")] = False,
    file: Annotated[list[Path] | None, typer.Option("--file", help="A saved history JSON (repeatable).")] = None,
    limit: Annotated[int, typer.Option(help="How many recent runs with --all.")] = 50,
    as_json: Json = False,
):
    """Replay histories against the current workflow code; exit 1 on non-determinism."""
    from starter.replay import HistoryFileError, fetch_histories, load_history_file, replay_histories

    if not (run_id or all_ or file):
        fail("give a run id, --all or --file")
    try:  # read (and refuse) every file before connecting to anything
        loaded = [load_history_file(f) for f in file or []]
    except HistoryFileError as exc:
        fail(str(exc), code=2)

    async def go():
        histories = list(loaded)
        if run_id or all_:
            client = await connect(get_settings())
            histories += await fetch_histories(client, run_id, limit)
        return await replay_histories(histories)

    outcomes = run_client(go())
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


@app.command("eval")
def eval_cmd(
    dataset: Annotated[Path, typer.Argument(help="Dataset JSON (see evals/datasets/).")],
    as_json: Json = False,
    concurrency: Annotated[int, typer.Option(min=1, max=16, help="Questions run at once.")] = 3,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions.")] = None,
    min_recall: Annotated[float | None, typer.Option(min=0, max=1, help="Exit 1 below this source recall.")] = None,
    min_facts: Annotated[float | None, typer.Option(min=0, max=1, help="Exit 1 below this fact coverage.")] = None,
    min_validity: Annotated[float | None, typer.Option(
        min=0, max=1, help="Exit 1 below this citation validity.")] = None,
):
    """Run a dataset's questions; print source recall, citation validity and fact coverage.

    With --min-..., exit 1 when a score is below its threshold (a quality gate for CI)."""
    from evals.scoring import below_thresholds
    from starter.eval_runs import print_table, run_dataset

    s = get_settings()
    if not dataset.is_file():
        fail(f"dataset not found: {dataset}")
    report = run_client(run_dataset(s, dataset, concurrency=concurrency, progress=not as_json, limit=limit))
    misses = below_thresholds(report, {"recall": min_recall, "facts": min_facts, "validity": min_validity})
    report["gate"] = {"passed": not misses, "misses": misses}
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        print_table(console, report)
    if misses:
        fail("eval below its thresholds: " + "; ".join(misses))
