"""Notify activity: tell reviewers about a waiting gate (reminders, escalations), once per key.

For now a notification is recorded in the Postgres side-effect ledger and logged; this is the
hook the Slack bot will use (it reads the ledger or replaces the body of ``notify``). The
idempotency key (``{wid}/notify/{gate}/{version}/reminder/{n}`` or ``.../escalation``) makes a
retried activity, or a replayed workflow, notify at most once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from temporalio import activity

from deepsci.contracts import NotifyInput, NotifyResult

if TYPE_CHECKING:
    from activities.deps import Deps

__all__ = ["NotifyActivities"]

log = logging.getLogger("deepsci.notify")


class NotifyActivities:
    def __init__(self, deps: Deps):
        self.deps = deps

    @activity.defn(name="notify")
    def notify(self, inp: NotifyInput) -> NotifyResult:
        def record() -> dict:
            log.info("notify %s: %s gate v%d of %s to %s: %s", inp.kind, inp.gate, inp.version,
                     inp.workflow_id, ", ".join(inp.recipients) or "the run's reviewers", inp.message)
            return inp.model_dump(mode="json")

        _, first = self.deps.store.once(inp.idempotency_key, record)
        return NotifyResult(key=inp.idempotency_key, first_time=first)
