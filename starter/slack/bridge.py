"""Bolt listeners are synchronous and run in threads; the Temporal client is asyncio. The bridge owns
one event loop in a daemon thread, with one Temporal client on it, and runs coroutines there."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio.client import Client

from deepsci.settings import Settings
from deepsci.temporal_client import connect

__all__ = ["TemporalBridge"]

T = TypeVar("T")


class TemporalBridge:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="deepsci-slack-temporal")
        self._client: Client | None = None

    def start(self, timeout: float = 15.0) -> TemporalBridge:
        """Start the loop and connect now, so a wrong address fails at start-up, not at the first click."""
        self._thread.start()
        self._client = asyncio.run_coroutine_threadsafe(connect(self.settings), self._loop).result(timeout)
        return self

    def run(self, fn: Callable[[Client], Awaitable[T]], timeout: float = 20.0) -> T:
        """Run ``fn(client)`` on the bridge's loop and wait for its result (raises what it raises)."""
        if self._client is None:
            raise RuntimeError("TemporalBridge.start() was not called")
        client = self._client
        return asyncio.run_coroutine_threadsafe(fn(client), self._loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
