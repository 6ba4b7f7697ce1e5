"""The worker: one process serving the workflow, LLM, I/O and CPU task queues (a cluster can split them)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.deps import Deps, build_deps
from activities.indexing import IndexActivities
from activities.planning import PlanActivities
from activities.publishing import PublishActivities
from activities.sources import SourceActivities
from activities.writing import WritingActivities
from deepsci.queues import Queues
from deepsci.settings import Settings, get_settings
from deepsci.temporal_client import connect, ensure_search_attributes
from workflows import search_attributes
from workflows.investigate import InvestigateWorkflow
from workflows.research import ResearchWorkflow

__all__ = ["build_workers", "run_worker", "ROLES"]

ROLES = ("workflows", "llm", "io", "cpu")
log = logging.getLogger("deepsci.worker")


def build_workers(client: Client, deps: Deps, prefix: str, roles: Sequence[str] = ROLES,
                  executor: ThreadPoolExecutor | None = None) -> list[Worker]:
    q = Queues(prefix)
    executor = executor or ThreadPoolExecutor(max_workers=8, thread_name_prefix="deepsci-activity")
    src, idx = SourceActivities(deps), IndexActivities(deps)
    wri, pub = WritingActivities(deps), PublishActivities(deps)
    by_role = {
        "llm": [PlanActivities().plan, wri.draft, wri.critique, wri.aggregate],
        "io": [src.search, pub.publish],
        "cpu": [src.fetch_parse, idx.index, idx.retrieve],
    }
    workers = []
    for role in roles:
        if role == "workflows":
            workers.append(Worker(client, task_queue=q.workflows,
                                  workflows=[ResearchWorkflow, InvestigateWorkflow]))
        else:
            workers.append(Worker(client, task_queue=getattr(q, role), activities=by_role[role],
                                  activity_executor=executor, max_concurrent_activities=8,
                                  graceful_shutdown_timeout=timedelta(seconds=10)))
    return workers


async def run_worker(settings: Settings | None = None, roles: Sequence[str] = ROLES) -> None:
    settings = settings or get_settings()
    client = await connect(settings)
    added = await ensure_search_attributes(client, settings.temporal_namespace, search_attributes.ALL)
    if added:
        log.info("registered search attributes %s", ", ".join(added))
    deps = build_deps(settings)
    workers = build_workers(client, deps, settings.task_queue_prefix, roles)
    log.info("worker polling %s on %s", ", ".join(w.task_queue for w in workers), settings.temporal_address)
    await asyncio.gather(*(w.run() for w in workers))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_worker())


if __name__ == "__main__":
    main()
