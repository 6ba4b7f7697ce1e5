"""Named timeouts and retry policies: the one table every activity call takes its options from."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta

from temporalio.common import RetryPolicy

from deepsci.errors import NON_RETRYABLE_TYPES

__all__ = ["ActivityOptions", "Policies", "POLICIES"]


def _retry(initial_s: float, max_interval_s: float, attempts: int) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=initial_s),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=max_interval_s),
        maximum_attempts=attempts,
        non_retryable_error_types=list(NON_RETRYABLE_TYPES),
    )


@dataclass(frozen=True)
class ActivityOptions:
    start_to_close: timedelta
    retry: RetryPolicy
    heartbeat: timedelta | None = None

    def kwargs(self) -> dict:
        """Keyword arguments for ``workflow.execute_activity``."""
        out: dict = {"start_to_close_timeout": self.start_to_close, "retry_policy": self.retry}
        if self.heartbeat is not None:
            out["heartbeat_timeout"] = self.heartbeat
        return out


@dataclass(frozen=True)
class Policies:
    """The named policies, as attributes: a misspelt name fails where the route table is built
    (at import), not inside workflow code (where an error retries the workflow task forever).

    Third-party client timeouts must stay below these start-to-close values (Temporal owns retries).
    The heartbeat timeout is what detects a dead worker quickly: every activity attempt heartbeats
    every few seconds while it runs (workers/heartbeats.py). Shorter heartbeat timeouts (10 s, and
    one for store and notify) were tried and left out for now: on the time-skipping test server a
    skipped gate deadline fired them on activities that were still running (docs/performance.md).
    """

    llm: ActivityOptions = ActivityOptions(timedelta(minutes=3), _retry(2, 60, 8), timedelta(seconds=30))
    search: ActivityOptions = ActivityOptions(timedelta(minutes=5), _retry(1, 30, 6), timedelta(seconds=30))
    fetch: ActivityOptions = ActivityOptions(timedelta(minutes=2), _retry(1, 30, 5), timedelta(seconds=30))
    embed: ActivityOptions = ActivityOptions(timedelta(minutes=10), _retry(1, 30, 6), timedelta(seconds=60))
    store: ActivityOptions = ActivityOptions(timedelta(seconds=60), _retry(0.5, 10, 10))
    notify: ActivityOptions = ActivityOptions(timedelta(seconds=30), _retry(1, 60, 10))

    def items(self) -> list[tuple[str, ActivityOptions]]:
        """(name, options) of every policy, e.g. for tests that check them all."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


POLICIES = Policies()
