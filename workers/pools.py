"""One thread pool per activity family inside a worker, so a slow family never starves the others.

Temporal gives a worker one ``activity_executor`` for all its sync activities. Eight fetches held
by trickling web servers then hold all eight threads, and an unrelated run's index, model and
notify activities wait behind them (seen: 120.8 s for a run that takes 1.7 s). The family of each
activity is in the route table (activities/routes.py); an activity inbound interceptor hands each
attempt to its family's pool, which is the SDK's own hook for it (``ExecuteActivityInput.executor``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, get_args

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from activities.routes import ROUTES
from deepsci.queues import ActivityRole, Pool
from deepsci.settings import Settings

__all__ = ["ActivityPools"]


class ActivityPools(Interceptor):
    """The pools of one worker process, and the interceptor that routes each attempt to its pool."""

    def __init__(self, sizes: dict[Pool, int]):
        missing = [p for p in get_args(Pool) if p not in sizes]
        if missing:
            raise ValueError(f"no thread count for pools {', '.join(missing)}")
        self.sizes = dict(sizes)
        self.executors = {p: ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"deepsci-{p}")
                          for p, n in sizes.items()}
        self._pool_of = {r.name: r.pool for r in ROUTES.values()}
        self._fallbacks: dict[ActivityRole, ThreadPoolExecutor] = {}

    @classmethod
    def from_settings(cls, s: Settings) -> ActivityPools:
        return cls({"fetch": s.worker_threads_fetch, "search": s.worker_threads_search,
                    "model": s.worker_threads_model,
                    "store": s.worker_threads_store, "notify": s.worker_threads_notify})

    def pool_of(self, activity_type: str) -> ThreadPoolExecutor | None:
        pool = self._pool_of.get(activity_type)
        return self.executors[pool] if pool else None

    def slots(self, role: ActivityRole) -> int:
        """Activity slots for the worker of ``role``: every pool that serves it can be full at
        once, so slow work in one family still leaves slots for the others."""
        pools: Iterable[Pool] = {r.pool for r in ROUTES.values() if r.role == role}
        return sum(self.sizes[p] for p in pools)

    def fallback(self, role: ActivityRole) -> ThreadPoolExecutor:
        """What ``Worker(activity_executor=...)`` is given: the SDK requires one for sync activities
        and wants it as large as the worker's slots. Every routed activity runs in its family's pool
        instead, so this one starts no thread (ThreadPoolExecutor creates threads on first use)."""
        if role not in self._fallbacks:
            self._fallbacks[role] = ThreadPoolExecutor(max_workers=self.slots(role),
                                                       thread_name_prefix=f"deepsci-{role}-unrouted")
        return self._fallbacks[role]

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ToFamilyPool(next, self)

    def shutdown(self) -> None:
        for ex in [*self.executors.values(), *self._fallbacks.values()]:
            ex.shutdown(wait=False, cancel_futures=True)


class _ToFamilyPool(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, pools: ActivityPools):
        super().__init__(next)
        self._pools = pools

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        if input.executor is not None:  # a sync activity: it needs a thread
            pool = self._pools.pool_of(activity.info().activity_type)
            if pool is not None:
                input = dataclasses.replace(input, executor=pool)
        return await super().execute_activity(input)
