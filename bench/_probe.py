"""The engine's floor: a workflow of N sequential no-op activities, to time one step's round trip
apart from the pipeline's own work (bench/overhead.py ``--probe-steps``).

Modes: ``other-queue`` (the activity on another task queue, as deepsci routes llm/io/cpu),
``same-queue`` (on the workflow's queue: the SDK may then start it eagerly in the same worker)
and ``local`` (a local activity: no task-queue dispatch and no extra workflow task).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

__all__ = ["ProbeWorkflow", "noop"]

_TIMEOUT = timedelta(seconds=30)


@activity.defn(name="probe_noop")
async def noop(x: int) -> int:
    return x


@workflow.defn(name="ProbeWorkflow")
class ProbeWorkflow:
    @workflow.run
    async def run(self, steps: int, mode: str, queue: str) -> int:
        total = 0
        for i in range(steps):
            if mode == "local":
                total += await workflow.execute_local_activity(noop, i, start_to_close_timeout=_TIMEOUT)
            else:
                q = workflow.info().task_queue if mode == "same-queue" else queue
                total += await workflow.execute_activity(noop, i, task_queue=q, start_to_close_timeout=_TIMEOUT)
        return total
