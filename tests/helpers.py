"""Helpers for driving runs in tests."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from deepsci.contracts import Progress, ResearchRequest
from deepsci.llm.client import LlmClient
from deepsci.settings import REPO_ROOT
from workers.main import build_workers
from workflows.research import ResearchWorkflow

CORPUS = REPO_ROOT / "evals" / "corpus"
DEEPSCI = str(Path(sys.executable).parent / "deepsci")  # the console script, as a user runs it
# USD per million tokens [input, output] for the fake OpenAI server's models (tests/fakes/openai_server.py).
MODEL_PRICES = {"fake-cheap": [1.0, 2.0], "fake-strong": [3.0, 6.0]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_run(client: Client, prefix: str, req: ResearchRequest, wid: str | None = None) -> WorkflowHandle:
    return await client.start_workflow(
        ResearchWorkflow.run, req, id=wid or f"research-test-{uuid.uuid4().hex[:8]}",
        task_queue=f"{prefix}-workflows",
    )


async def wait_for_gate(handle: WorkflowHandle, gate: str, timeout_s: float = 120) -> Progress:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        p = await handle.query(ResearchWorkflow.progress)
        if p.open_gate == gate:
            return p
        if loop.time() > deadline:
            raise AssertionError(f"gate {gate} never opened; stage {p.stage}")
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def running(workers: list[Worker]):
    """Run Temporal workers for the duration of the block, then shut them down."""
    tasks = [asyncio.ensure_future(w.run()) for w in workers]
    await asyncio.sleep(0)
    try:
        yield
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        for t in tasks:
            t.cancel()


async def wait_progress(handle: WorkflowHandle, pred: Callable[[Progress], bool], timeout_s: float = 90) -> Progress:
    """Poll the run's ``progress`` query until ``pred`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        p = await handle.query(ResearchWorkflow.progress)
        if pred(p):
            return p
        if loop.time() > deadline:
            raise AssertionError(f"condition never held; last progress {p}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def model_workers(env, deps, fake, **settings):
    """Workers in model mode on the fake OpenAI server ``fake``; yields their task-queue prefix."""
    s = deps.settings.model_copy(update={
        "openai_base_url": fake.base_url, "openai_api_key": "sk-test", "llm_model": "fake-strong",
        "llm_cheap_model": "fake-cheap", "llm_strong_model": "fake-strong", "llm_prices": MODEL_PRICES,
        "llm_timeout_s": 3.0, **settings})
    model_deps = dataclasses.replace(deps, settings=s, llm=LlmClient(s, deps.store))
    prefix = f"m{uuid.uuid4().hex[:10]}"
    async with running(build_workers(env.client, model_deps, prefix)):
        yield prefix


def cli_env(env, settings, prefix: str) -> dict[str, str]:
    """Environment for a `deepsci` subprocess talking to the test servers on task-queue ``prefix``."""
    return {**os.environ, "DEEPSCI_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "DATABASE_URL": settings.dsn, "DEEPSCI_HOME": str(settings.home_dir),
            "DEEPSCI_TASK_QUEUE_PREFIX": prefix, "COLUMNS": "200"}


async def deepsci_cli(env_vars: dict[str, str], *args: str) -> tuple[int | None, str, str]:
    """Run `deepsci *args`; returns (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        DEEPSCI, *args, env=env_vars, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=240)
    return proc.returncode, out.decode(), err.decode()


def payloads(msg) -> Iterator[Payload]:
    """Every Payload inside a history event (inputs, results, headers, memos, search attributes)."""
    if isinstance(msg, Payload):
        yield msg
        return
    for fd, value in msg.ListFields():
        if fd.message_type is None:
            continue
        if fd.is_repeated:
            values = value.values() if fd.message_type.GetOptions().map_entry else value
        else:
            values = [value]
        for v in values:
            yield from payloads(v)
