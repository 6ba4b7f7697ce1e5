"""Gate deadlines on the time-skipping test server: a day passes in milliseconds."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.testing import WorkflowEnvironment

from deepsci.contracts import ResearchRequest
from deepsci.temporal_client import DATA_CONVERTER, ensure_search_attributes
from tests.conftest import CORPUS
from workers.main import build_workers
from workflows import search_attributes
from workflows.research import ResearchWorkflow


def _test_server() -> str:
    import shutil
    import sys
    from pathlib import Path

    local = Path(sys.executable).parent / "temporal-test-server"
    return str(local) if local.exists() else shutil.which("temporal-test-server")


@pytest.fixture(scope="module")
async def skipping_env():
    e = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER, test_server_existing_path=_test_server())
    await ensure_search_attributes(e.client, "default", search_attributes.ALL)
    yield e
    await e.shutdown()


@pytest.mark.parametrize("policy,status", [("reject", "rejected"), ("approve", "published")])
async def test_gate_deadline_applies_the_request_policy(skipping_env, deps, policy, status):
    prefix = f"ts{uuid.uuid4().hex[:8]}"
    workers = build_workers(skipping_env.client, deps, prefix)
    tasks = [asyncio.ensure_future(w.run()) for w in workers]
    try:
        req = ResearchRequest(question="What is full jitter in retry backoff?", corpus=str(CORPUS),
                              max_sub_questions=1, gate_deadline_s=3 * 24 * 3600,
                              deadline_policy=policy)
        result = await skipping_env.client.execute_workflow(
            ResearchWorkflow.run, req, id=f"research-deadline-{policy}-{prefix}",
            task_queue=f"{prefix}-workflows")
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        for t in tasks:
            t.cancel()
    assert result.status == status
    assert result.decisions[0].reviewer == "deadline" and result.decisions[0].by_deadline
    assert result.decisions[0].decision == policy
