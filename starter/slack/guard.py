"""Who may reach Bolt: Slack's request signature, checked on the raw body before anything parses it,
and a replay cache so a captured signed request is acted on once within the signature window."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk.signature import Clock, SignatureVerifier

__all__ = ["RequestGuard", "Refusal", "WINDOW_S"]

WINDOW_S = 300  # slack_sdk's verifier refuses timestamps more than 5 minutes off


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


class _Clock(Clock):
    def __init__(self, now: Callable[[], float]):
        self._now = now

    def now(self) -> float:
        return self._now()


class RequestGuard:
    """``check(body, timestamp, signature)`` is None for a fresh, validly signed request, else a Refusal.

    A (timestamp, signature) pair is remembered until its timestamp leaves the window, after which
    the verifier refuses it anyway; only validly signed requests are remembered, so the cache holds
    at most what Slack really sent in five minutes (``max_entries`` caps it all the same).
    """

    def __init__(self, signing_secret: str, now: Callable[[], float] = time.time, max_entries: int = 100_000):
        self._verifier = SignatureVerifier(signing_secret, clock=_Clock(now))
        self._now = now
        self._max = max_entries
        self._seen: set[tuple[str, str]] = set()
        self._expiry: list[tuple[int, str, str]] = []  # heap of (timestamp, timestamp, signature)
        self._lock = threading.Lock()

    def check(self, body: bytes, timestamp: str | None, signature: str | None) -> Refusal | None:
        if not timestamp or not signature:
            return Refusal(401, "missing X-Slack-Request-Timestamp or X-Slack-Signature")
        # The verifier calls int() on the timestamp: garbage must be a refusal, not an exception.
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            return Refusal(401, "X-Slack-Request-Timestamp is not a Unix time")
        if len(signature) > 100 or not self._verifier.is_valid(body, timestamp, signature):
            return Refusal(401, "invalid signature, or a timestamp more than 5 minutes off")
        with self._lock:
            self._expire()
            key = (timestamp, signature)
            if key in self._seen:
                return Refusal(409, "this signed request was already received (replay)")
            if len(self._seen) >= self._max:
                return Refusal(503, "too many signed requests in the last 5 minutes")
            self._seen.add(key)
            heapq.heappush(self._expiry, (int(timestamp), timestamp, signature))
        return None

    def _expire(self) -> None:
        oldest_valid = self._now() - WINDOW_S - 1
        while self._expiry and self._expiry[0][0] < oldest_valid:
            _, ts, sig = heapq.heappop(self._expiry)
            self._seen.discard((ts, sig))
