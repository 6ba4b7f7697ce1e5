"""A private embedded stack for benchmarks: Postgres, the Temporal dev server and worker processes on
free ports under a temporary DEEPSCI_HOME, so a developer's stack on 7233/8233/55432 is never touched.

Shared by bench/chaos.py, bench/overhead.py and bench/parked.py (run them as scripts: ``bench/`` is
then on ``sys.path``). Also: process-tree RSS and CPU from /proc, and the last-line JSON helper.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deepsci.settings import REPO_ROOT, Settings
from starter import stack

__all__ = ["CORPUS", "DATASET", "PrivateStack", "free_ports", "log", "emit", "tree_rss_mb", "tree_cpu_s",
           "WORKER_GRACE_S", "RESERVED_PORTS", "stop_process"]

CORPUS = REPO_ROOT / "evals" / "corpus"
DATASET = REPO_ROOT / "evals" / "datasets" / "agent_reliability.json"
RESERVED_PORTS = {7233, 8233, 55432}  # a developer's stack
WORKER_GRACE_S = 10  # workers.main.GRACEFUL_SHUTDOWN


def log(msg: str, who: str = "bench") -> None:
    sys.stderr.write(f"[{who} {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def emit(figures: dict) -> None:
    """The benchmark's last stdout line: its figures plus the machine's load averages."""
    out = {**figures, "loadavg": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


def run_on(stack: PrivateStack, bench, args) -> int:
    """Run ``bench(args, stack)`` on the private stack, stop the stack whatever happens, print the
    figures as the last JSON line."""
    import asyncio

    try:
        out = asyncio.run(bench(args, stack))
    finally:
        stack.close()
    emit(out)
    return 0


def free_ports(n: int) -> list[int]:
    socks: list[socket.socket] = []
    try:
        while len(socks) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            if s.getsockname()[1] in RESERVED_PORTS:
                s.close()
                continue
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:
    """Children get SIGKILL if the harness dies without cleaning up (Linux only)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# ---------------------------------------------------------------- /proc


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (parser children, the dev server's helpers)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def tree_rss_mb(pid: int) -> float:
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return round(total / 1024, 1)


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its living descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


# ---------------------------------------------------------------- the private stack


class PrivateStack:
    """Postgres + Temporal dev server + worker processes under a temporary DEEPSCI_HOME.

    ``prefix`` names the task queues and the temp dir; ``env`` adds variables for the children
    (e.g. a setting the worker reads); ``worker_argv`` replaces the worker command line.
    """

    def __init__(self, keep: bool = False, prefix: str = "chaos", env: dict[str, str] | None = None,
                 worker_argv: list[str] | None = None):
        self.keep = keep
        self.home = Path(tempfile.mkdtemp(prefix=f"deepsci-{prefix}-"))
        self.home.chmod(0o755)  # Postgres runs as another user when we are root
        t_port, ui_port, pg_port = free_ports(3)
        self.settings = Settings(
            _env_file=None, home=self.home, temporal_address=f"127.0.0.1:{t_port}",
            temporal_ui_port=ui_port, temporal_ui_url=f"http://127.0.0.1:{ui_port}", pg_port=pg_port,
            database_url=None, qdrant_url=None, qdrant_path=None, reports_dir=None,
            openai_base_url=None, openai_api_key=None, task_queue_prefix=prefix, corpus_dir=CORPUS,
        )
        # Children see only our settings: no developer DATABASE_URL, QDRANT_URL or LLM endpoint.
        dropped = {"DATABASE_URL", "QDRANT_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY"}
        self.env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("DEEPSCI_")}
        self.env.update({
            "DEEPSCI_HOME": str(self.home), "DEEPSCI_TEMPORAL_ADDRESS": self.settings.temporal_address,
            "DEEPSCI_TEMPORAL_UI_PORT": str(ui_port), "DEEPSCI_TEMPORAL_UI_URL": self.settings.temporal_ui_url,
            "DEEPSCI_PG_PORT": str(pg_port), "DEEPSCI_TASK_QUEUE_PREFIX": prefix,
            "DEEPSCI_CORPUS_DIR": str(CORPUS), "PYTHONUNBUFFERED": "1",
            # Scripts under bench/ (a bench worker entry point) import the repo's packages.
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
            **(env or {}),
        })
        self.worker_argv = worker_argv or stack.worker_argv()
        self.temporal: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.worker_log: Path | None = None
        self.workers_started = 0
        (self.home / "logs").mkdir()
        self.pg_started = False

    # -- processes

    def _spawn(self, argv: list[str], log_path: Path) -> subprocess.Popen:
        with open(log_path, "ab") as out:
            return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.home, env=self.env, start_new_session=True,
                                    preexec_fn=_die_with_parent)

    def start_postgres(self) -> None:
        stack.start_postgres(self.home / "postgres", self.settings.pg_port)
        self.pg_started = True

    async def start_temporal(self) -> float:
        t0 = time.monotonic()
        self.temporal = self._spawn(stack.temporal_argv(self.settings), self.home / "logs" / "temporal.log")
        await stack.wait_temporal(self.settings, timeout_s=90)
        return time.monotonic() - t0

    async def stop_temporal(self, timeout_s: float = 20) -> int | None:
        proc, self.temporal = self.temporal, None
        return await stop_process(proc, signal.SIGTERM, timeout_s) if proc else None

    async def start_worker(self, timeout_s: float = 120) -> float:
        """Start a worker process; return the seconds until it polls (its 'worker polling' log line)."""
        self.workers_started += 1
        self.worker_log = self.home / "logs" / f"worker-{self.workers_started}.log"
        t0 = time.monotonic()
        self.worker = self._spawn(self.worker_argv, self.worker_log)
        while time.monotonic() - t0 < timeout_s:
            if self.worker_log.exists() and b"worker polling" in self.worker_log.read_bytes():
                return time.monotonic() - t0
            if self.worker.poll() is not None:
                break
            await asyncio.sleep(0.05)
        tail = self.worker_log.read_text(errors="replace")[-2000:] if self.worker_log.exists() else ""
        raise RuntimeError(f"worker did not start (exit {self.worker.poll()}):\n{tail}")

    def signal_worker(self, sig: signal.Signals) -> None:
        assert self.worker is not None
        os.killpg(self.worker.pid, sig)

    async def wait_worker(self, timeout_s: float) -> int | None:
        assert self.worker is not None
        deadline = time.monotonic() + timeout_s
        while self.worker.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.worker.poll()

    async def stop_worker(self, timeout_s: float = WORKER_GRACE_S + 10) -> int | None:
        proc, self.worker = self.worker, None
        return await stop_process(proc, signal.SIGTERM, timeout_s) if proc else None

    def close(self) -> None:
        """Stop everything this stack started; never raises."""
        for proc in (self.worker, self.temporal):
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=WORKER_GRACE_S + 5)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        self.worker = self.temporal = None
        if self.pg_started:
            try:
                stack.stop_postgres(self.home / "postgres")
            except Exception as err:  # noqa: BLE001 - best effort at exit
                log(f"stopping Postgres failed: {err}")
        if self.keep:
            log(f"kept the state dir {self.home}")
        else:
            shutil.rmtree(self.home, ignore_errors=True)


async def stop_process(proc: subprocess.Popen, sig: signal.Signals, timeout_s: float) -> int | None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode
