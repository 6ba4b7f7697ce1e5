"""The embedded trace backend: Arize Phoenix (`phoenix serve`, from the optional `observe` extra),
which takes OTLP/HTTP at /v1/traces and serves its UI and REST API on one port. `deepsci up`
starts it under the state dir; tests start one per session (docs/observability.md)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from deepsci.settings import Settings

__all__ = ["phoenix_binary", "backend_argv", "backend_env", "PID_NAME"]

PID_NAME = "traces"  # <home>/run/traces.pid and <home>/logs/traces.log


def phoenix_binary() -> str | None:
    """The `phoenix` console script next to this interpreter, or None without the extra."""
    local = Path(sys.executable).parent / "phoenix"
    return str(local) if local.exists() else shutil.which("phoenix")


def backend_argv() -> list[str]:
    binary = phoenix_binary()
    if binary is None:
        raise RuntimeError("the trace backend is not installed: pip install -e '.[observe]'")
    return [binary, "serve"]


def backend_env(settings: Settings, workdir: Path) -> dict[str, str]:
    """Phoenix's settings: loopback only, our ports, its SQLite database under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))}
    env.update(PHOENIX_HOST="127.0.0.1", PHOENIX_PORT=str(settings.trace_port),
               PHOENIX_GRPC_PORT=str(settings.trace_grpc_port), PHOENIX_WORKING_DIR=str(workdir),
               PHOENIX_TELEMETRY_ENABLED="false")
    return env


def started_by_up(settings: Settings) -> bool:
    """Whether `deepsci up` started the backend (it may still be starting: Phoenix takes a while)."""
    pid_file = settings.home_dir / "run" / f"{PID_NAME}.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        return "phoenix" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError, IndexError):
        return False
