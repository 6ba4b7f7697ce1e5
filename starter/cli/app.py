"""The `deepsci` Typer app and what every command family shares: the consoles, one-line failures,
and running a client coroutine with server refusals turned into readable exits."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer
from rich.console import Console

from starter.cli.options import switch

__all__ = ["app", "console", "err", "fail", "run_client", "Json", "EXIT_ERROR", "EXIT_REFUSED",
           "EXIT_RUNNING", "EXIT_NOT_FOUND", "OPTIONS", "EXIT_RUN_FAILED", "EXIT_UNREACHABLE", "EXIT_CODES"]

# Exit codes by kind, so scripts can tell a refusal from a failed run (README, `deepsci --help`).
EXIT_ERROR = 1  # anything else (an unexpected error; --verbose shows its trace)
EXIT_REFUSED = 2  # bad input, or a decision/option the run or the CLI refused
EXIT_RUNNING = 3  # `result` on a run still going (add --wait)
EXIT_NOT_FOUND = 4  # no such run
EXIT_RUN_FAILED = 5  # the run itself failed, was cancelled or terminated
EXIT_UNREACHABLE = 6  # Temporal cannot be reached (is the stack up?)
EXIT_CODES = ("Exit codes: 0 ok; 1 unexpected error; 2 refused (bad input or decision); 3 still running; "
              "4 no such run; 5 the run failed, was cancelled or terminated; 6 Temporal unreachable.")

app = typer.Typer(
    help="DeepScientist: durable research pipelines on Temporal.\n\n"
    "Quick start: `deepsci demo` (starts the embedded stack and runs a question on the sample corpus).",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _plain_help_option() -> None:
    """`-h/--help` is a switch like the others: Typer's help row would show it as `<bool>`."""
    from typer._click.core import Command

    built = Command.get_help_option

    def get_help_option(self, ctx):
        option = built(self, ctx)
        if option is not None:
            option.metavar = ""
        return option

    Command.get_help_option = get_help_option  # type: ignore[method-assign]


_plain_help_option()
console = Console()
err = Console(stderr=True)
OPTIONS = {"verbose": False}  # --verbose: a failure prints its trace as well as its one line


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        sys.stdout.write(f"deepsci {version('deepscientist')}\n")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, switch("--verbose", "-v", help="On a failure, print the full trace too.")] = False,
    show_version: Annotated[bool, typer.Option(
        "--version", help="Print the version and exit.", callback=_version, is_eager=True,
        metavar="")] = False,
) -> None:
    OPTIONS["verbose"] = verbose

Json = Annotated[bool, switch("--json", help="Print machine-readable JSON only.")]


def fail(message: str, code: int = 1) -> None:
    from rich.markup import escape

    # A reason may hold brackets (e.g. a range); soft_wrap keeps a one-line reason one line, piped too.
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def run_client(coro):
    """Run a client coroutine; server refusals become one readable line, not a traceback."""
    from temporalio.service import RPCError, RPCStatusCode

    try:
        return asyncio.run(coro)
    except RPCError as exc:
        if "already completed" in exc.message:
            fail("the run has already finished; `deepsci result ID` shows how it ended", code=EXIT_REFUSED)
        if exc.status == RPCStatusCode.NOT_FOUND:
            fail(f"no such run: {exc.message}", code=EXIT_NOT_FOUND)
        fail(f"Temporal refused: {exc.message}")
    except RuntimeError as exc:  # connection failures from the client carry a readable message
        if "connect" in str(exc).lower():
            fail(f"{exc}\nIs the stack up? Try `deepsci up`.", code=EXIT_UNREACHABLE)
        raise
