"""The notify activity's Slack side: one message per gate (posted once through the ledger), reminders
and escalations as thread replies under it, and the message edited in place once the gate is decided.

Slack failures become Temporal errors: ``ratelimited`` and 5xx are retryable (``Retry-After`` becomes
``next_retry_delay``), configuration errors (bad token, unknown channel, missing scope) fail at once
with a message that says what to fix. The workflow logs a failed notification and goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from temporalio.exceptions import ApplicationError

from deepsci.contracts import NotifyInput
from deepsci.errors import ErrorType, http_error
from deepsci.observe import metrics as m
from deepsci.observe import span
from deepsci.slack import blocks as bk
from deepsci.temporal_client import web_ui_link

if TYPE_CHECKING:
    from deepsci.settings import Settings
    from deepsci.store import ArtifactStore

__all__ = ["SlackPoster", "web_client", "slack_error", "opened_key", "decided_key"]

log = logging.getLogger("deepsci.slack")

# Below the notify policy's 30 s start-to-close: Temporal owns the retries, the client makes none.
CLIENT_TIMEOUT_S = 10
# A `decided` notice can overtake the `gate_opened` one still being retried; it waits this many
# attempts for the gate message to appear before giving up on editing it.
DECIDED_WAITS_FOR_OPENED = 3

_RETRYABLE_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
_HINTS = {
    "invalid_auth": "the bot token is not valid; check SLACK_BOT_TOKEN (xoxb-...)",
    "not_authed": "no bot token was sent; set SLACK_BOT_TOKEN",
    "token_revoked": "the bot token was revoked; reinstall the app and update SLACK_BOT_TOKEN",
    "account_inactive": "the bot's account is deactivated; reinstall the app",
    "channel_not_found": "check DEEPSCI_SLACK_CHANNEL (a channel id such as C0123ABCD) and that the bot can see it",
    "not_in_channel": "invite the bot to DEEPSCI_SLACK_CHANNEL (/invite @DeepScientist)",
    "is_archived": "DEEPSCI_SLACK_CHANNEL is archived",
    "missing_scope": "the app lacks a scope (chat:write, commands); add it and reinstall (docs/slack.md)",
    "invalid_blocks": "Slack refused the message layout (a bug in deepsci/slack/blocks.py)",
    "message_not_found": "the gate message was deleted in Slack",
    "cant_update_message": "the gate message was not posted by this bot",
}


def web_client(settings: Settings) -> WebClient:
    """A WebClient on ``slack_api_url`` (a proxy, or the fake in tests) that never retries by itself."""
    return WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url,
                     timeout=CLIENT_TIMEOUT_S, retry_handlers=[])


def slack_error(method: str, response: Any) -> ApplicationError:
    """The mapping from a failed Slack Web API call to a retryable or non-retryable Temporal error."""
    status = int(getattr(response, "status_code", 0) or 0)
    data = response.data if isinstance(getattr(response, "data", None), dict) else {}
    error = str(data.get("error") or f"HTTP {status}")
    headers = {k.lower(): v for k, v in (getattr(response, "headers", None) or {}).items()}
    if status == 429 or error == "ratelimited":
        return http_error(f"Slack {method}", 429, error, headers.get("retry-after"))
    if status >= 500:
        return http_error(f"Slack {method}", status, error, headers.get("retry-after"))
    if error in _RETRYABLE_ERRORS:
        return ApplicationError(f"Slack {method}: {error} (will retry)", type=ErrorType.SLACK_UNAVAILABLE)
    hint = _HINTS.get(error, "see https://api.slack.com/methods/" + method)
    return ApplicationError(f"Slack {method} failed: {error}: {hint}", type=ErrorType.SLACK_ERROR, non_retryable=True)


def call(client: WebClient, method: str, **kwargs: Any) -> dict:
    """One Web API call; failures are raised as Temporal errors (see :func:`slack_error`)."""
    outcome = "error"
    try:
        with span(f"slack {method}", **{"deepsci.slack.method": method}):
            try:
                data = client.api_call(method, json=kwargs).data
            except SlackApiError as exc:
                raise slack_error(method, exc.response) from None
            except OSError as exc:  # refused, reset, DNS, timeout (URLError is an OSError): Slack may come back
                raise ApplicationError(f"Slack {method}: {exc}", type=ErrorType.SLACK_UNAVAILABLE) from None
        outcome = "ok"
        return data  # type: ignore[return-value]
    finally:
        m.SLACK_POSTS.add(1, {"method": method, "outcome": outcome})


def opened_key(n: NotifyInput) -> str:
    return f"{n.workflow_id}/notify/{n.gate}/{n.version}/opened"


def decided_key(n: NotifyInput) -> str:
    return f"{n.workflow_id}/notify/{n.gate}/{n.version}/decided"


class SlackPoster:
    """Posts a gate's notifications to ``settings.slack_channel``, each at most once per idempotency key."""

    def __init__(self, settings: Settings, store: ArtifactStore, client: WebClient | None = None):
        self.settings = settings
        self.store = store
        self.channel = settings.slack_channel or ""
        self.client = client or web_client(settings)

    def send(self, n: NotifyInput, attempt: int = 1) -> tuple[dict, bool]:
        """Post ``n`` (once per key); returns the ledger record and whether this call made it."""
        actions: dict[str, Callable[[], dict | None]] = {
            "gate_opened": lambda: self._opened(n),
            "reminder": lambda: self._reply(n),
            "escalation": lambda: self._reply(n),
            "decided": lambda: self._decided(n, attempt),
        }
        act = actions[n.kind]
        return self.store.once(n.idempotency_key, lambda: {**n.model_dump(mode="json"), "slack": act()})

    # ---------------------------------------------------------------- one per kind

    def _opened(self, n: NotifyInput) -> dict:
        link = web_ui_link(self.settings, n.workflow_id)
        # The gate may have closed before its message went out (a retried post): show the outcome.
        decided = self.store.ledger_get(decided_key(n))
        record = NotifyInput.model_validate(decided).decision if decided else None
        blocks = bk.decided_blocks(n, link, record) if record else bk.gate_blocks(n, link)
        res = call(self.client, "chat.postMessage", channel=self.channel, text=bk.gate_text(n),
                   blocks=blocks, unfurl_links=False, unfurl_media=False)
        log.info("slack: posted the %s gate v%d of %s (ts %s)", n.gate, n.version, n.workflow_id, res["ts"])
        return {"channel": res["channel"], "ts": res["ts"]}

    def _reply(self, n: NotifyInput) -> dict:
        who = " ".join(bk.mention(r) for r in n.recipients)
        if n.kind == "escalation":
            text = (f":rotating_light: {who + ': ' if who else ''}{bk.escape(n.message)}. "
                    f"New deadline {bk.slack_date(n.deadline)}.")
        else:
            text = (f":alarm_clock: {who + ': ' if who else ''}{bk.escape(n.message)}; "
                    f"deadline {bk.slack_date(n.deadline)}.")
        opened = self.store.ledger_get(opened_key(n))
        thread = (opened or {}).get("slack")
        kwargs: dict[str, Any] = {"channel": self.channel, "text": text}
        if thread:
            # An escalation is also shown in the channel: the people it names may not follow the thread.
            kwargs.update(channel=thread["channel"], thread_ts=thread["ts"], reply_broadcast=n.kind == "escalation")
        else:  # a gate opened before Slack was set up: a message of its own, with the link
            kwargs["text"] = (f"{text}\nRun `{bk.escape(n.workflow_id)}`, {n.gate} gate version {n.version}: "
                              f"<{web_ui_link(self.settings, n.workflow_id)}|Open in Temporal Web UI>")
        res = call(self.client, "chat.postMessage", **kwargs)
        return {"channel": res["channel"], "ts": res["ts"], "thread_ts": kwargs.get("thread_ts")}

    def _decided(self, n: NotifyInput, attempt: int) -> dict | None:
        opened = self.store.ledger_get(opened_key(n))
        where = (opened or {}).get("slack")
        if not where:
            if attempt < DECIDED_WAITS_FOR_OPENED:
                raise ApplicationError(f"the {n.gate} gate message of {n.workflow_id} is not posted yet",
                                       type=ErrorType.SLACK_GATE_MESSAGE_PENDING)
            log.info("slack: no gate message for %s to mark decided", n.idempotency_key)
            return None
        if n.decision is None:
            raise ApplicationError("a decided notification without its decision", type=ErrorType.SLACK_ERROR,
                                   non_retryable=True)
        shown = NotifyInput.model_validate(opened)  # the question and plan/report the message shows
        # A decided notice carries the plan the run follows: different from the one shown = edited.
        edited = n.plan if n.gate == "plan" and n.plan and n.plan != shown.plan else None
        blocks = bk.decided_blocks(shown, web_ui_link(self.settings, n.workflow_id), n.decision, edited)
        verb = {"approve": "approved", "reject": "rejected", "request_changes": "changes requested"}[
            n.decision.decision]
        call(self.client, "chat.update", channel=where["channel"], ts=where["ts"], blocks=blocks,
             text=f"The {n.gate} of {n.workflow_id} was {verb} by {n.decision.reviewer}.")
        return {"channel": where["channel"], "ts": where["ts"]}
