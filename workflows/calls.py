"""The one way workflow code calls an activity: its queue and policy come from the route table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.routes import route_of
    from deepsci.queues import Queues

__all__ = ["call"]

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741


def call(method: Callable[[Any, I], O], arg: I) -> Awaitable[O]:
    """Run ``method`` (e.g. ``SourceActivities.search``) with ``arg`` on the queue of its role (of
    this run's queue prefix), with its named policy: ``await call(SourceActivities.search, inp)``."""
    route = route_of(method)
    queues = Queues.of_workflow_queue(workflow.info().task_queue)
    return workflow.execute_activity_method(method, arg, task_queue=queues.of(route.role),
                                            **route.policy.kwargs())
