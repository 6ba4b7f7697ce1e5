"""Helpers for driving runs in tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from deepsci.contracts import Progress, ResearchRequest
from deepsci.settings import REPO_ROOT
from workflows.research import ResearchWorkflow

CORPUS = REPO_ROOT / "evals" / "corpus"


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
