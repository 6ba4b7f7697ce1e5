"""Heartbeat from a background thread while a sync activity blocks (a model call can take a minute,
the llm policy's heartbeat timeout is 30 s: a dead worker is still noticed in 30 s)."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from temporalio import activity

__all__ = ["heartbeating"]


@contextmanager
def heartbeating(every_s: float = 10.0) -> Iterator[None]:
    """Send a heartbeat now and every ``every_s`` until the block ends; a no-op outside an activity."""
    if not activity.in_activity():
        yield
        return
    activity.heartbeat()
    ctx = contextvars.copy_context()  # the activity context lives in a contextvar
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            ctx.run(activity.heartbeat)

    t = threading.Thread(target=beat, name="heartbeat", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(timeout=every_s)
