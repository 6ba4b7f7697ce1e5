"""The route table: for each activity, the queue role that runs it, its named policy and the
thread pool (family) it runs in inside a worker.

Said once, read twice: the workflows call activities through it (``workflows/calls.py``) and the
worker registers activities from it (``workers/main.py``). It is checked when this module loads:
every activity of the activity classes has exactly one route, and every role is an activity
queue role, so a forgotten or doubled route fails at import, not in a running workflow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, get_args

from temporalio import activity

from activities.indexing import IndexActivities
from activities.notify import NotifyActivities
from activities.planning import PlanActivities
from activities.publishing import PublishActivities
from activities.sources import SourceActivities
from activities.writing import WritingActivities
from deepsci.policies import POLICIES, ActivityOptions
from deepsci.queues import ActivityRole, Pool

__all__ = ["ACTIVITY_CLASSES", "ROUTES", "Route", "activity_name", "bound_routes", "check_routes", "route_of"]

# Each class is built once per worker process with the worker's Deps.
ACTIVITY_CLASSES: tuple[type, ...] = (PlanActivities, WritingActivities, SourceActivities, IndexActivities,
                                      PublishActivities, NotifyActivities)


@dataclass(frozen=True)
class Route:
    method: Callable[..., Any]  # the activity method on its class, e.g. SourceActivities.search
    role: ActivityRole
    policy: ActivityOptions
    # Each family has its own threads in a worker (workers/pools.py), so slow fetches cannot
    # starve model calls, indexing or notifications.
    pool: Pool

    @property
    def name(self) -> str:
        return activity_name(self.method)


def activity_name(method: Callable[..., Any]) -> str:
    """The activity type name of an ``@activity.defn`` method ('' when it is not one)."""
    # The SDK's own reader of the decorator's mark; there is no public one.
    defn = activity._Definition.from_callable(method)
    return (defn.name or "") if defn else ""


def _activities_of(cls: type) -> list[Callable[..., Any]]:
    return [fn for fn in vars(cls).values() if callable(fn) and activity_name(fn)]


def check_routes(routes: Iterable[Route], classes: Iterable[type]) -> dict[Callable[..., Any], Route]:
    """The routes by method, or ValueError naming the first activity routed zero or several times,
    the route of a method that is no activity of ``classes``, or an unknown role."""
    by_method: dict[Callable[..., Any], Route] = {}
    for r in routes:
        if r.role not in get_args(ActivityRole):
            raise ValueError(f"route of {r.method.__qualname__}: unknown queue role {r.role!r}")
        if r.pool not in get_args(Pool):
            raise ValueError(f"route of {r.method.__qualname__}: unknown thread pool {r.pool!r}")
        if r.method in by_method:
            raise ValueError(f"{r.method.__qualname__} is routed twice")
        by_method[r.method] = r
    known = [fn for cls in classes for fn in _activities_of(cls)]
    for fn in known:
        if fn not in by_method:
            raise ValueError(f"activity {fn.__qualname__} has no route")
    for fn in by_method:
        if fn not in known:
            raise ValueError(f"{fn.__qualname__} is routed but is not an activity of the activity classes")
    return by_method


ROUTES: dict[Callable[..., Any], Route] = check_routes([
    # Model steps: a rate-limited queue of their own.
    Route(PlanActivities.plan, "llm", POLICIES.llm, "model"),
    Route(WritingActivities.draft, "llm", POLICIES.llm, "model"),
    Route(WritingActivities.critique, "llm", POLICIES.llm, "model"),
    Route(WritingActivities.aggregate, "llm", POLICIES.llm, "model"),
    # Network and external writes.
    Route(SourceActivities.search, "io", POLICIES.search, "search"),
    Route(PublishActivities.publish, "io", POLICIES.store, "store"),
    Route(NotifyActivities.notify, "io", POLICIES.notify, "notify"),
    # Parsing (in parser children) and embedding.
    Route(SourceActivities.fetch_parse, "cpu", POLICIES.fetch, "fetch"),
    Route(IndexActivities.index, "cpu", POLICIES.embed, "store"),
    Route(IndexActivities.retrieve, "cpu", POLICIES.embed, "store"),
], ACTIVITY_CLASSES)


def route_of(method: Callable[..., Any]) -> Route:
    """The route of an activity method; KeyError naming it when it has none."""
    try:
        return ROUTES[method]
    except KeyError:
        raise KeyError(f"no route for {getattr(method, '__qualname__', method)!r} (activities/routes.py)") from None


def bound_routes(instances: dict[type, object]) -> list[tuple[Route, Callable[..., Any]]]:
    """Each route with its activity method bound to the instance of its class (for a worker)."""
    return [(ROUTES[fn], getattr(obj, fn.__name__)) for cls, obj in instances.items()
            for fn in _activities_of(cls)]
