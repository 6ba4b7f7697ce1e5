"""Every activity attempt heartbeats while it runs, so short heartbeat timeouts are safe."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from tests.helpers import running
from workers.heartbeats import Heartbeats


@activity.defn
def quiet_step(seconds: float) -> str:
    """Works longer than its heartbeat timeout and never heartbeats itself (like publish did)."""
    time.sleep(seconds)
    return "done"


@workflow.defn(sandboxed=False)
class QuietStepWorkflow:
    @workflow.run
    async def run(self, seconds: float) -> str:
        return await workflow.execute_activity(
            quiet_step, seconds, start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=2), retry_policy=RetryPolicy(maximum_attempts=1))


async def _run(env, interceptors: list) -> str:
    queue = f"hb-{uuid.uuid4().hex[:8]}"
    worker = Worker(env.client, task_queue=queue, workflows=[QuietStepWorkflow], activities=[quiet_step],
                    activity_executor=ThreadPoolExecutor(2), interceptors=interceptors)
    async with running([worker]):
        return await env.client.execute_workflow(QuietStepWorkflow.run, 5.0, id=f"hb-{uuid.uuid4().hex[:8]}",
                                                 task_queue=queue)


async def test_an_activity_that_never_heartbeats_outlives_its_heartbeat_timeout(env):
    assert await _run(env, [Heartbeats(every_s=0.5)]) == "done"


async def test_without_the_interceptor_the_same_activity_times_out(env):
    with pytest.raises(WorkflowFailureError) as info:
        await _run(env, [])
    assert "heartbeat" in str(info.value.cause.cause).lower() or "Heartbeat" in repr(info.value.cause)
