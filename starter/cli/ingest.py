"""`deepsci ingest PATH_OR_URL...`: what the pipeline makes of files, folders or URLs (no server needed)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from starter.cli.app import app
from starter.cli.options import switch

__all__ = ["ingest"]


@app.command()
def ingest(
    inputs: Annotated[list[str], typer.Argument(help="Files, folders (read recursively) or http(s) URLs.")],
    as_json: Annotated[bool, switch("--json", help="One JSON object per input on stdout, then a summary.")]
    = False,
) -> None:
    """Fetch, parse and chunk documents exactly as a run would, and say what became of each."""
    from deepsci.ingest import expand
    from deepsci.ingest import ingest as run_ingest
    from deepsci.settings import get_settings

    err = Console(stderr=True)
    out = Console()
    total = len(list(expand(inputs)))
    with Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task("ingest", total=total)

        def show(result) -> None:
            progress.advance(task)
            if as_json:
                sys.stdout.write(json.dumps(result.as_dict()) + "\n")
                sys.stdout.flush()
            elif result.status == "ok":
                out.print(f"[green]ok[/green]      {result.path}  {result.kind}, {result.pages} pages, "
                          f"{result.chars} chars, {result.chunks} chunks", highlight=False, soft_wrap=True)
            else:
                out.print(f"[yellow]refused[/yellow] {result.path}  {result.reason}", highlight=False, soft_wrap=True)

        _, summary = run_ingest(inputs, get_settings(), on_result=show)
    if as_json:
        sys.stdout.write(json.dumps(summary.as_dict()) + "\n")
    else:
        out.print(f"{summary.files} inputs: {summary.ok} ok, {summary.refused} refused, {summary.pages} pages "
                  f"in {summary.elapsed_s:g} s", highlight=False, soft_wrap=True)
