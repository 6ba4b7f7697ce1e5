"""The `deepsci` Typer app and what every command family shares: the consoles, one-line failures,
and running a client coroutine with server refusals turned into readable exits."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from starter.cli.options import switch

__all__ = ["app", "console", "err", "fail", "run_client", "Json"]

app = typer.Typer(
    help="DeepScientist: durable research pipelines on Temporal.\n\n"
    "Quick start: `deepsci demo` (starts the embedded stack and runs a question on the sample corpus).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)

Json = Annotated[bool, switch("--json", help="Print machine-readable JSON only.")]


def fail(message: str, code: int = 1) -> None:
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(message)}")  # a reason may hold brackets, e.g. a range
    raise typer.Exit(code)


def run_client(coro):
    """Run a client coroutine; server refusals become one readable line, not a traceback."""
    from temporalio.service import RPCError, RPCStatusCode

    try:
        return asyncio.run(coro)
    except RPCError as exc:
        if "already completed" in exc.message:
            fail("the run has already finished; `deepsci result ID` shows how it ended", code=2)
        if exc.status == RPCStatusCode.NOT_FOUND:
            fail(f"no such run: {exc.message}", code=4)
        fail(f"Temporal refused: {exc.message}")
    except RuntimeError as exc:  # connection failures from the client carry a readable message
        if "connect" in str(exc).lower():
            fail(f"{exc}\nIs the stack up? Try `deepsci up`.")
        raise
