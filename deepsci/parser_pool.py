"""A warm pool of isolated parser children (``deepsci.parser_child``), one pool per worker process.

Why a pool: a fresh interpreter per document cost ~0.7 s (Python + pymupdf + trafilatura start-up)
and made parsing 20-50x slower than the parsers themselves. Children here are started once, kept
warm, handed one document at a time, and replaced when they breach a limit, die, or have parsed
``recycle_after`` documents (bounding slow leaks in C parsers).

Handover never deadlocks whatever the document's size: the parent writes the request with
non-blocking writes in the same ``select`` loop that reads the reply and watches the wall clock,
so a child that is slow to start reading (or never reads) costs at most the wall-clock limit, and
the request is always delivered whole to a child that does read.

Children get an environment built from an allow-list (no API keys, Slack tokens or database
URLs), lead their own session (a timeout kills the whole process group), die with this process
(``PR_SET_PDEATHSIG``, set from one long-lived spawner thread because the signal follows the
thread that forked), and drop the network where the OS allows (see ``deepsci.parser_child``).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from deepsci.parser_child import DEFAULT_PRELOAD, frame

__all__ = ["ParserPool", "Reply", "ChildDied", "WallClock", "default_pool", "shutdown_default_pool", "child_env"]

log = logging.getLogger("deepsci.parser_pool")

_REPO_ROOT = Path(__file__).resolve().parent.parent
# What a parser child may see of the worker's environment: enough to run Python, nothing secret.
_ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "HOME", "SYSTEMROOT")
_HEADER = struct.Struct(">I")


class ChildDied(Exception):
    """The child ended without a reply; ``returncode`` and ``stderr_tail`` say how."""

    def __init__(self, returncode: int, stderr_tail: str):
        super().__init__(f"parser child exited {returncode}")
        self.returncode, self.stderr_tail = returncode, stderr_tail


class WallClock(Exception):
    """The child did not answer within the wall-clock limit (it has been killed)."""


@dataclass
class Reply:
    """A child's answer: the JSON reply, which child, and whether it was replaced afterwards."""

    body: dict
    pid: int


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    """A pipe Popen was asked for (``subprocess.PIPE``), so it is there."""
    if stream is None:
        raise RuntimeError("parser child started without its pipe")
    return stream


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _ENV_ALLOW}
    env["PYTHONPATH"] = str(_REPO_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@dataclass(eq=False)  # identity: a child is in the pool's sets by who it is
class _Child:
    proc: subprocess.Popen[bytes]
    err: IO[bytes]  # the temp file that is the child's stderr
    buf: bytearray = field(default_factory=bytearray)
    ready: dict | None = None
    docs: int = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stdin(self) -> IO[bytes]:
        return _pipe(self.proc.stdin)

    @property
    def stdout(self) -> IO[bytes]:
        return _pipe(self.proc.stdout)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the child leads its own session: its pgid is its pid
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.close()

    def close(self) -> None:
        for stream in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            self.err.close()

    def stderr_tail(self) -> str:
        try:
            self.err.seek(0, os.SEEK_END)
            self.err.seek(max(0, self.err.tell() - 4096))
            return self.err.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""


class ParserPool:
    """Up to ``size`` warm children; ``parse`` blocks (calling ``on_wait`` about once a second) for one."""

    def __init__(self, size: int, *, recycle_after: int = 200, preload: tuple[str, ...] = DEFAULT_PRELOAD,
                 start_timeout_s: float = 120.0):
        self.size = max(1, size)
        self.recycle_after = max(1, recycle_after)
        self.preload = preload
        self.start_timeout_s = start_timeout_s
        self.network = "unknown"  # what the last ready child reported: "netns", "userns+netns" or "none"
        self._slots = threading.BoundedSemaphore(self.size)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._warming = 0  # children being started by the spawner thread
        self._idle: list[_Child] = []
        self._all: set[_Child] = set()
        self._closed = False
        self._owner = os.getpid()
        # PR_SET_PDEATHSIG fires when the *thread* that forked the child ends: fork from one thread
        # that lives as long as the pool, never from a short-lived activity thread.
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="parser-spawn")

    # ------------------------------------------------------------ public

    def parse(self, header: dict, data: bytes, timeout_s: float, on_wait: Callable[[], object] | None = None) -> Reply:
        """Send one document to a child and return its reply.

        Raises ``WallClock`` (child killed and replaced) or ``ChildDied`` (replaced); the caller
        turns either into the document's reason. Whatever ``on_wait`` raises (cancellation)
        kills a child that was parsing and propagates.
        """
        while not self._slots.acquire(timeout=1.0):
            if on_wait is not None:
                on_wait()
        try:
            child = self._take(on_wait)
            return self._exchange(child, header, data, timeout_s, on_wait)
        finally:
            self._slots.release()

    def close(self) -> None:
        """End every child (EOF first, then SIGKILL); the pool cannot be used afterwards."""
        with self._lock:
            self._closed = True
            children, self._idle, self._all = list(self._all), [], set()
        for child in children:
            with contextlib.suppress(OSError):
                child.stdin.close()
        deadline = time.monotonic() + 2
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            child.kill()
        self._spawner.shutdown(wait=False, cancel_futures=True)

    def pids(self) -> list[int]:
        with self._lock:
            return [c.pid for c in self._all]

    # ------------------------------------------------------------ children

    def _spawn(self) -> _Child:
        cmd = [sys.executable, "-m", "deepsci.parser_child", f"--parent-pid={os.getpid()}",
               f"--preload={','.join(self.preload)}"]
        err = tempfile.TemporaryFile(mode="a+b", prefix="deepsci-parse-")  # O_APPEND: truncatable per document
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, bufsize=0,
                                start_new_session=True, close_fds=True, env=child_env(), cwd=str(_REPO_ROOT))
        for stream in (_pipe(proc.stdin), _pipe(proc.stdout)):
            fd = stream.fileno()
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        child = _Child(proc, err)
        with self._lock:
            if self._closed:
                child.kill()
                raise RuntimeError("parser pool is closed")
            self._all.add(child)
        return child

    def _take(self, on_wait: Callable[[], object] | None) -> _Child:
        """An idle child (or one still warming up), ready for a document."""
        with self._cond:
            if self._closed:
                raise RuntimeError("parser pool is closed")
            if not self._all and not self._warming:  # first use: warm every child at once
                for _ in range(self.size):
                    self._warm_one()
            while not self._idle:
                if not self._warming:  # a warm-up failed: start another
                    self._warm_one()
                self._cond.wait(1.0)
                if on_wait is not None:
                    on_wait()
            child = self._idle.pop(0)  # the longest-idle child: likeliest ready
        if child.ready is None:
            try:
                body = self._read_reply(child, None, time.monotonic() + self.start_timeout_s, on_wait)
            except BaseException:
                self._retire(child)
                raise
            child.ready = body
            self.network = str(body.get("network", "none"))
        return child

    def _warm_one(self) -> None:
        """Start a child from the spawner thread; it joins the idle list (holding ``_cond``)."""
        self._warming += 1
        self._spawner.submit(self._spawn_idle)

    def _spawn_idle(self) -> None:
        child = None
        try:
            child = self._spawn()
        except Exception as exc:  # noqa: BLE001 - logged; the next _take starts another
            log.warning("could not start a parser child: %s", exc)
        with self._cond:
            self._warming -= 1
            if child is not None:
                self._idle.append(child)
            self._cond.notify()

    def _retire(self, child: _Child) -> None:
        """Kill ``child``; a replacement starts warming now, so the next document need not wait for it."""
        with self._cond:
            self._all.discard(child)
            if not self._closed:
                with contextlib.suppress(RuntimeError):  # the spawner is shut down: the pool is closing
                    self._warm_one()
        child.kill()

    def _give_back(self, child: _Child) -> None:
        with self._cond:
            if not self._closed:
                self._idle.append(child)
                self._cond.notify()
                return
            self._all.discard(child)
        child.kill()

    # ------------------------------------------------------------ one exchange

    def _exchange(self, child: _Child, header: dict, data: bytes, timeout_s: float,
                  on_wait: Callable[[], object] | None) -> Reply:
        with contextlib.suppress(OSError, ValueError):
            child.err.truncate(0)  # the stderr tail we may report is this document's
        request = frame(json.dumps(header).encode()) + frame(data)
        try:
            body = self._read_reply(child, memoryview(request), time.monotonic() + timeout_s, on_wait)
        except BaseException:
            self._retire(child)
            raise
        child.docs += 1
        if body.get("retire") or child.docs >= self.recycle_after:
            self._retire(child)
        else:
            self._give_back(child)
        return Reply(body, child.pid)

    def _read_reply(self, child: _Child, pending: memoryview | None, deadline: float,
                    on_wait: Callable[[], object] | None) -> dict:
        """Write ``pending`` and read one reply frame in one loop: neither side can block the other."""
        out_fd = child.stdout.fileno()
        in_fd = child.stdin.fileno()
        next_beat = time.monotonic() + 1.0
        while True:
            body = _take_frame(child.buf)
            if body is not None:
                return json.loads(body)
            now = time.monotonic()
            if now >= deadline:
                raise WallClock()
            if on_wait is not None and now >= next_beat:
                on_wait()
                next_beat = now + 1.0
            wait = max(0.0, min(deadline, next_beat) - now)
            readable, writable, _ = select.select([out_fd], [in_fd] if pending else [], [], wait)
            if writable and pending:
                try:
                    sent = os.write(in_fd, pending[:1 << 20])
                    pending = pending[sent:]
                except BlockingIOError:
                    pass
                except BrokenPipeError:
                    pending = None  # the child is gone; its exit status comes from the read side
            if readable:
                try:
                    chunk = os.read(out_fd, 1 << 20)
                except BlockingIOError:
                    continue
                if not chunk:  # the child closed its end: it is exiting (or must be made to)
                    try:
                        child.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        os.killpg(child.pid, signal.SIGKILL)
                        child.proc.wait()
                    raise ChildDied(child.proc.returncode, child.stderr_tail())
                child.buf += chunk


def _take_frame(buf: bytearray) -> bytes | None:
    if len(buf) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack_from(buf)
    if len(buf) < _HEADER.size + size:
        return None
    body = bytes(buf[_HEADER.size:_HEADER.size + size])
    del buf[:_HEADER.size + size]
    return body


_DEFAULT: ParserPool | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pool(size: int | None = None, recycle_after: int | None = None) -> ParserPool:
    """This process's pool, started on first use (sized from settings unless given)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None or _DEFAULT._owner != os.getpid():  # a forked process gets its own children
            if size is None or recycle_after is None:
                from deepsci.settings import get_settings

                s = get_settings()
                size = size or s.parse_pool_size or os.cpu_count() or 1
                recycle_after = recycle_after or s.parse_child_max_docs
            _DEFAULT = ParserPool(size, recycle_after=recycle_after)
        return _DEFAULT


def shutdown_default_pool() -> None:
    global _DEFAULT
    with _DEFAULT_LOCK:
        pool, _DEFAULT = _DEFAULT, None
    if pool is not None and pool._owner == os.getpid():
        pool.close()


atexit.register(shutdown_default_pool)
