"""`deepsci`: start, watch, approve and read research runs; bring the embedded stack up and down.

Commands live by family: ``stack`` (up, down, worker, slack, demo), ``runs`` (run, status,
result), ``explore`` (show, runs, cancel, logs), ``review`` (approve, reject, request-changes,
pending, raise-budget), ``tools`` (replay, eval), ``ingest``; each registers on the one Typer ``app`` (``app.py``)."""

from __future__ import annotations

import sys

from starter.cli.app import app, err

# Importing a family registers its commands; this order is the order of `deepsci --help`.
# isort: off
from starter.cli import stack, runs, explore, review, tools, ingest  # noqa: E402, F401
# isort: on

__all__ = ["app", "main"]


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
