"""The worker: one process serving the workflow, LLM, I/O and CPU task queues (a cluster can split them).

SIGTERM (and SIGINT) drains: the workers stop polling, activities already running get up to
``GRACEFUL_SHUTDOWN`` to finish and report their results, then the process exits 0. An activity
still running after that is cancelled and Temporal retries it on another worker. A second signal
exits at once (Temporal then retries the unfinished activities after their timeouts).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.deps import Deps, build_deps
from activities.routes import ACTIVITY_CLASSES, bound_routes
from deepsci.observe.logs import configure_logging
from deepsci.observe.metrics import serve_metrics, start_endpoint, temporal_runtime
from deepsci.observe.tracing import flush_tracing, setup_tracing
from deepsci.queues import ROLES, Queues, Role
from deepsci.settings import Settings, get_settings
from deepsci.temporal_client import connect, ensure_search_attributes, has_tracing, tracing_interceptors
from workers.heartbeats import Heartbeats
from workers.pools import ActivityPools
from workflows import search_attributes
from workflows.investigate import InvestigateWorkflow
from workflows.research import ResearchWorkflow

__all__ = ["activities_by_role", "build_workers", "run_worker", "serve", "ROLES", "GRACEFUL_SHUTDOWN"]

# How long in-flight activities may run on after a shutdown request (`deepsci down` waits 15 s
# before it sends SIGKILL, so keep this below that).
GRACEFUL_SHUTDOWN = timedelta(seconds=10)
STICKY_TIMEOUT = timedelta(seconds=3)
log = logging.getLogger("deepsci.worker")


def activities_by_role(deps: Deps) -> dict[str, list]:
    """Each activity queue role's activities, bound to one instance per activity class, as the
    route table (activities/routes.py) says."""
    by_role: dict[str, list] = {}
    for route, bound in bound_routes({cls: cls(deps) for cls in ACTIVITY_CLASSES}):
        by_role.setdefault(route.role, []).append(bound)
    return by_role


def build_workers(client: Client, deps: Deps, prefix: str, roles: Sequence[Role] = ROLES,
                  pools: ActivityPools | None = None) -> list[Worker]:
    """One Temporal worker per queue role; activities run in their family's thread pool. Every
    worker traces (Temporal's OpenTelemetry interceptor: inherited from a client built by
    ``connect``, added here for any other client, such as the test environment's)."""
    q = Queues(prefix)
    pools = pools or ActivityPools.from_settings(deps.settings)
    by_role = activities_by_role(deps)
    tracing = [] if has_tracing(client) else tracing_interceptors()
    workers = []
    for role in roles:
        if role == "workflows":
            # A bounded cache: parked runs beyond it are evicted and rebuilt from history on their
            # next task. A sticky task not picked up in 3 s goes to any worker, so a dead worker's
            # runs move on in seconds (docs/performance.md).
            # Workflow tasks are GIL-bound: a few at a time, each on its own thread (settings).
            n = deps.settings.worker_workflow_tasks
            workers.append(Worker(client, task_queue=q.workflows, interceptors=tracing,
                                  workflows=[ResearchWorkflow, InvestigateWorkflow],
                                  max_cached_workflows=deps.settings.worker_max_cached_workflows,
                                  max_concurrent_workflow_tasks=n, max_concurrent_workflow_task_polls=min(n, 5),
                                  workflow_task_executor=ThreadPoolExecutor(n, thread_name_prefix="workflow-task"),
                                  sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT))
        else:
            # Tracing outermost: the attempt's span is current when its family's pool runs it.
            workers.append(Worker(client, task_queue=q.of(role), activities=by_role[role],
                                  activity_executor=pools.fallback(role),
                                  interceptors=[*tracing, pools, Heartbeats()],
                                  max_concurrent_activities=pools.slots(role),
                                  graceful_shutdown_timeout=GRACEFUL_SHUTDOWN))
    return workers


async def serve(workers: Sequence[Worker], stop: asyncio.Event) -> None:
    """Run ``workers`` until ``stop`` is set or one of them fails, then shut all of them down
    gracefully (stop polling, let running activities finish); re-raise a worker's failure."""
    runs = [asyncio.create_task(w.run(), name=f"worker {w.task_queue}") for w in workers]
    stopper = asyncio.create_task(stop.wait(), name="stop requested")
    try:
        await asyncio.wait([*runs, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if not stop.is_set():
        log.error("a worker stopped on its own; shutting the others down")
    await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
    results = await asyncio.gather(*runs, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise failures[0]


def _install_signal_handlers(stop: asyncio.Event) -> list[tuple[signal.Signals, object]]:
    """SIGTERM/SIGINT set ``stop`` (drain); a second one exits at once. Only on the main thread."""
    loop = asyncio.get_running_loop()
    installed: list[tuple[signal.Signals, object]] = []

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("%s again: exiting without waiting for running activities "
                        "(Temporal retries them after their timeouts)", sig.name)
            logging.shutdown()
            os._exit(128 + sig.value)
        log.info("%s: draining: no new tasks; running activities get up to %ss to finish",
                 sig.name, GRACEFUL_SHUTDOWN.total_seconds())
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous = signal.getsignal(sig)
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no support
            continue
        installed.append((sig, previous))
    return installed


def _restore_signal_handlers(installed: list[tuple[signal.Signals, object]]) -> None:
    loop = asyncio.get_running_loop()
    for sig, previous in installed:
        loop.remove_signal_handler(sig)
        if previous is not None:
            signal.signal(sig, previous)  # type: ignore[arg-type]


async def run_worker(settings: Settings | None = None, roles: Sequence[Role] = ROLES, *,
                     stop: asyncio.Event | None = None, handle_signals: bool = True,
                     close_stores: bool = False) -> None:
    """Serve ``roles`` until ``stop`` is set or (with ``handle_signals``) SIGTERM/SIGINT arrives;
    returns after the drain. ``close_stores`` closes the Qdrant client afterwards (the process is
    about to exit; the client is cached per process, so other callers leave it open)."""
    settings = settings or get_settings()
    stop = stop or asyncio.Event()
    installed = _install_signal_handlers(stop) if handle_signals else []
    try:
        setup_tracing(settings, "deepsci-worker")
        start_endpoint(settings)  # first: the runtime's metric buffer is only made when something drains it
        client = await connect(settings, runtime=temporal_runtime(settings))
        added = await ensure_search_attributes(client, settings.temporal_namespace, search_attributes.ALL)
        if added:
            log.info("registered search attributes %s", ", ".join(added))
        deps = build_deps(settings)
        workers = build_workers(client, deps, settings.task_queue_prefix, roles)
        if stop.is_set():
            log.info("stop requested during start-up; not polling")
            return
        log.info("worker polling %s on %s (pid %d)", ", ".join(w.task_queue for w in workers),
                 settings.temporal_address, os.getpid())
        try:
            async with serve_metrics(settings):
                await serve(workers, stop)
        finally:
            if close_stores:
                deps.vectors.client.close()
        log.info("worker drained and stopped")
    finally:
        _restore_signal_handlers(installed)


def main() -> None:
    """The worker process (`python -m workers.main`, `deepsci worker`): exits 0 after a drain."""
    configure_logging(get_settings().log_format)
    code = 0
    try:
        asyncio.run(run_worker(close_stores=True))
    except SystemExit as err:
        code = 0 if err.code is None else err.code if isinstance(err.code, int) else 1
    except BaseException:
        log.exception("worker failed")
        code = 1
    finally:
        # Everything is drained and reported by now. Skip interpreter finalization: the Temporal
        # core's native threads may call into Python while it tears down, which aborts the process
        # ("PyGILState_Release ... finalizing", SIGABRT) in about one exit in seven. That also skips
        # the tracer provider's exit hook: send its buffered spans (the last seconds of work) first.
        flush_tracing()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()
