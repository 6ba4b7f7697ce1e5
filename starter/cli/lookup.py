"""Finding a run from what a user typed (the `research-` prefix optional, "did you mean" on a miss)
and saying at once when no worker serves the run's task queues."""

from __future__ import annotations

import difflib
from datetime import timedelta

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionDescription
from temporalio.service import RPCError, RPCStatusCode

from deepsci.settings import Settings
from starter.cli.app import EXIT_NOT_FOUND, fail

__all__ = ["find_run", "candidates", "similar_ids", "has_pollers", "warn_if_no_worker"]

PREFIX = "research-"


def candidates(raw: str) -> list[str]:
    """The ids a user may mean by ``raw``: `gate1` is `research-gate1` (what `--id gate1` made)."""
    raw = raw.strip()
    return [raw] if raw.startswith(PREFIX) else [PREFIX + raw, raw]


async def similar_ids(client: Client, raw: str, limit: int = 3) -> list[str]:
    """Run ids close to ``raw``: a prefix match first, else the closest of the recent runs."""
    stem = raw.strip().removeprefix(PREFIX)
    recent: list[str] = []
    try:
        async for wf in client.list_workflows("WorkflowType = 'ResearchWorkflow'", limit=500):
            recent.append(wf.id)
    except RPCError:
        return []
    recent = list(dict.fromkeys(recent))
    prefixed = [i for i in recent if i.removeprefix(PREFIX).startswith(stem[:12])] if stem else []
    return (prefixed or difflib.get_close_matches(PREFIX + stem, recent, n=limit, cutoff=0.5))[:limit]


async def find_run(client: Client, raw: str) -> tuple[str, WorkflowExecutionDescription]:
    """The id and description of the run ``raw`` names; a miss exits 4 with the nearest ids."""
    for wid in candidates(raw):
        try:
            return wid, await client.get_workflow_handle(wid).describe(rpc_timeout=timedelta(seconds=10))
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
    near = await similar_ids(client, raw)
    hint = f"; did you mean {' or '.join(near)}?" if near else "; `deepsci runs` lists the runs"
    fail(f"no such run: {raw}{hint}", code=EXIT_NOT_FOUND)
    raise AssertionError("not reached")  # fail() exits


async def has_pollers(client: Client, task_queue: str) -> bool:
    """Whether any worker has polled ``task_queue`` for workflow tasks lately (the server keeps
    pollers for a few minutes, so a worker that just stopped still counts)."""
    resp = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW), timeout=timedelta(seconds=5))
    return bool(resp.pollers)


async def warn_if_no_worker(client: Client, settings: Settings, task_queue: str | None = None) -> bool:
    """Print the command that starts a worker when none polls the run's workflow queue; True if one does."""
    from starter.cli.app import err

    queue = task_queue or settings.queue("workflows")
    try:
        if await has_pollers(client, queue):
            return True
    except RPCError:
        return True  # cannot tell: say nothing rather than something wrong
    err.print(f"[yellow]warning:[/yellow] no worker polls task queue {queue}: the run waits until one "
              "does. Start one with `deepsci up` (embedded stack) or `deepsci worker`.", soft_wrap=True)
    return False
