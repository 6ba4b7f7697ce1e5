"""Every activity attempt heartbeats while it runs, so a dead worker is noticed within the heartbeat
timeout (deepsci/policies.py) whatever the activity does, instead of at its start-to-close timeout.

One activity interceptor does it for all of them: an activity that forgets to heartbeat (publish,
notify, retrieve, the offline engine's steps) or heartbeats between long steps (index) no longer
costs a crash the whole start-to-close (60 s for publish) before Temporal retries it elsewhere.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from deepsci.heartbeat import heartbeating

__all__ = ["HEARTBEAT_EVERY_S", "Heartbeats"]

# Well under every heartbeat timeout (deepsci/policies.py): the SDK batches heartbeats at 0.8 x the timeout.
HEARTBEAT_EVERY_S = 3.0


class Heartbeats(Interceptor):
    def __init__(self, every_s: float = HEARTBEAT_EVERY_S):
        self.every_s = every_s

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Heartbeating(next, self.every_s)


class _Heartbeating(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, every_s: float):
        super().__init__(next)
        self._every_s = every_s

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        if input.executor is not None:  # sync: the wrapper runs in the activity's thread and context
            input = dataclasses.replace(input, fn=_beating(input.fn, self._every_s))
        return await super().execute_activity(input)


def _beating(fn: Callable[..., Any], every_s: float) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        with heartbeating(every_s=every_s):
            return fn(*args)

    return run
