"""Notify activity: tell reviewers about a gate (opened, reminder, escalation, decided), once per key.

Every notification is recorded in the Postgres side-effect ledger under its idempotency key
(``{wid}/notify/{gate}/{version}/opened``, ``.../reminder/{n}``, ``.../escalation``,
``.../decided``), so a retried activity or a replayed workflow notifies at most once. With a Slack
bot token and a channel set, the gate message is posted to Slack (deepsci/slack/poster.py);
without them the notification is only recorded and logged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from temporalio import activity

from deepsci.contracts import NotifyInput, NotifyResult

if TYPE_CHECKING:
    from activities.deps import Deps
    from deepsci.slack.poster import SlackPoster

__all__ = ["NotifyActivities"]

log = logging.getLogger("deepsci.notify")


class NotifyActivities:
    def __init__(self, deps: Deps):
        self.deps = deps
        self._poster: SlackPoster | None = None

    def _slack(self) -> SlackPoster | None:
        s = self.deps.settings
        if not (s.slack_bot_token and s.slack_channel):
            return None
        if self._poster is None:  # imported here: workers without Slack never load slack_sdk
            from deepsci.slack.poster import SlackPoster

            self._poster = SlackPoster(s, self.deps.store)
        return self._poster

    @activity.defn(name="notify")
    def notify(self, inp: NotifyInput) -> NotifyResult:
        log.info("notify %s: %s gate v%d of %s to %s: %s", inp.kind, inp.gate, inp.version,
                 inp.workflow_id, ", ".join(inp.recipients) or "the run's reviewers", inp.message)
        poster = self._slack()
        if poster is not None:
            _, first = poster.send(inp, attempt=activity.info().attempt)
        else:
            _, first = self.deps.store.once(inp.idempotency_key, lambda: inp.model_dump(mode="json"))
        return NotifyResult(key=inp.idempotency_key, first_time=first)
