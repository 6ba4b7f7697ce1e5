"""The notify activity against a fake Slack Web API and the real Postgres ledger: one gate message
per gate, reminders and escalations in its thread, the message edited once decided, and Slack's
failures turned into retryable or non-retryable Temporal errors."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from deepsci.contracts import DecisionRecord, NotifyInput
from deepsci.slack import blocks as bk
from tests.fakes.slack import CHANNEL, TOKEN, SlackFake

DEADLINE = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)


@pytest.fixture
def slack():
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def notify(deps, slack):
    """The notify activity with Slack configured to post to the fake."""
    s = deps.settings.model_copy(update={"slack_bot_token": TOKEN, "slack_channel": CHANNEL,
                                         "slack_api_url": slack.api_url})
    acts = NotifyActivities(dataclasses.replace(deps, settings=s))
    env = ActivityEnvironment()

    def run(inp: NotifyInput, attempt: int = 1):
        env.info = dataclasses.replace(env.info, attempt=attempt)
        return env.run(acts.notify, inp)

    return run


def _n(wid: str, kind: str, gate: str = "plan", version: int = 1, suffix: str | None = None, **kw) -> NotifyInput:
    suffix = suffix or {"gate_opened": "opened", "decided": "decided", "escalation": "escalation"}.get(kind, kind)
    return NotifyInput(idempotency_key=f"{wid}/notify/{gate}/{version}/{suffix}", workflow_id=wid, gate=gate,
                       version=version, kind=kind, deadline=DEADLINE, question="How do retries use jitter?",
                       **kw)


def _wid() -> str:
    return f"research-slack-{uuid.uuid4().hex[:8]}"


def _buttons(msg: dict) -> dict[str, dict]:
    actions = [b for b in msg["blocks"] if b["type"] == "actions"]
    return {e["text"]["text"]: e for a in actions for e in a["elements"]}


def test_without_slack_settings_a_notification_is_only_recorded(deps, slack):
    wid = _wid()
    res = ActivityEnvironment().run(NotifyActivities(deps).notify, _n(wid, "gate_opened", plan=["a?"]))
    assert res.first_time
    assert deps.store.ledger_get(f"{wid}/notify/plan/1/opened")["plan"] == ["a?"]
    assert slack.calls == []


def test_the_plan_gate_message_is_posted_once_and_threads_reminders(deps, slack, notify):
    wid = _wid()
    opened = _n(wid, "gate_opened", plan=["What is full jitter?", "How many attempts <at most>?"])
    assert notify(opened).first_time
    assert not notify(opened).first_time  # a retried activity does not post twice
    (msg,) = slack.top_level()
    assert len(slack.called("chat.postMessage")) == 1
    text = json.dumps(msg["blocks"])
    assert "How do retries use jitter?" in text and "1. What is full jitter?" in text
    assert "How many attempts &lt;at most&gt;?" in text  # user text cannot form Slack links
    assert f"/workflows/{wid}|Open in Temporal Web UI" in text and "<!date^1893553440^" in text
    buttons = _buttons(msg)
    assert list(buttons) == ["Approve", "Edit plan", "Reject"]
    assert bk.GateRef.parse(buttons["Approve"]["value"]) == bk.GateRef(wid, "plan", 1)
    assert deps.store.ledger_get(f"{wid}/notify/plan/1/opened")["slack"] == {"channel": CHANNEL, "ts": msg["ts"]}

    notify(_n(wid, "reminder", suffix="reminder/1", message="the plan gate is waiting (reminder 1)",
              recipients=["U0ANN"]))
    notify(_n(wid, "escalation", message="no decision within 86400s; escalated",
              recipients=["U0CAROL", "dave"]))
    reminder, escalation = slack.replies(msg["ts"])
    assert reminder["text"].startswith(":alarm_clock: <@U0ANN>: the plan gate is waiting (reminder 1)")
    assert not reminder["reply_broadcast"]
    assert escalation["text"].startswith(":rotating_light: <@U0CAROL> dave: no decision within 86400s")
    assert escalation["reply_broadcast"]  # shown in the channel too: the people named may not follow the thread
    assert len(slack.top_level()) == 1


def test_decided_edits_the_message_in_place(deps, slack, notify):
    wid = _wid()
    notify(_n(wid, "gate_opened", gate="report", version=2, summary="Full jitter spreads retries.",
              sources=["AWS backoff - https://example.org/backoff", "Retry storms - file:///c/retry.md"]))
    (msg,) = slack.top_level()
    assert list(_buttons(msg)) == ["Approve", "Reject", "Request changes"]
    assert "AWS backoff - https://example.org/backoff" in json.dumps(msg["blocks"])

    at = datetime(2030, 1, 1, 12, tzinfo=UTC)
    notify(_n(wid, "decided", gate="report", version=2,
              decision=DecisionRecord(gate="report", decision="request_changes", reviewer="U0ANN",
                                      comment="cover thundering herds", at=at)))
    (edited,) = slack.top_level()
    assert edited["ts"] == msg["ts"] and "edited" in edited
    assert _buttons(edited) == {}  # no more buttons to click
    outcome = edited["blocks"][-1]["text"]["text"]
    assert "*Changes requested* by <@U0ANN>" in outcome and "> cover thundering herds" in outcome
    assert "Full jitter spreads retries." in json.dumps(edited["blocks"])  # still shows what was decided on


def test_a_deadline_decision_says_so(deps, slack, notify):
    wid = _wid()
    notify(_n(wid, "gate_opened", plan=["a?"]))
    notify(_n(wid, "decided", decision=DecisionRecord(gate="plan", decision="reject", reviewer="deadline",
                                                      comment="no decision within 60s; policy reject",
                                                      at=DEADLINE, by_deadline=True)))
    outcome = slack.top_level()[0]["blocks"][-1]["text"]["text"]
    assert outcome.startswith(":x: *Rejected* at the deadline") and "policy reject" in outcome


def test_rate_limited_and_5xx_are_retried_after_retry_after(deps, slack, notify):
    wid = _wid()
    slack.fail("chat.postMessage", status=429, retry_after="7")
    with pytest.raises(ApplicationError) as limited:
        notify(_n(wid, "gate_opened", plan=["a?"]))
    assert not limited.value.non_retryable and limited.value.next_retry_delay == timedelta(seconds=7)
    assert "rate limited" in str(limited.value)
    slack.fail("chat.postMessage", status=503)
    with pytest.raises(ApplicationError) as down:
        notify(_n(wid, "gate_opened", plan=["a?"]))
    assert not down.value.non_retryable and "HTTP 503" in str(down.value)
    assert deps.store.ledger_get(f"{wid}/notify/plan/1/opened") is None  # nothing recorded: the retry posts
    assert notify(_n(wid, "gate_opened", plan=["a?"])).first_time
    assert len(slack.top_level()) == 1


@pytest.mark.parametrize("error,hint", [("channel_not_found", "DEEPSCI_SLACK_CHANNEL"),
                                        ("invalid_auth", "SLACK_BOT_TOKEN"),
                                        ("not_in_channel", "/invite")])
def test_configuration_errors_fail_at_once_with_what_to_fix(deps, slack, notify, error, hint):
    wid = _wid()
    slack.fail("chat.postMessage", error)
    with pytest.raises(ApplicationError) as failed:
        notify(_n(wid, "gate_opened", plan=["a?"]))
    assert failed.value.non_retryable and error in str(failed.value) and hint in str(failed.value)
    assert deps.store.ledger_get(f"{wid}/notify/plan/1/opened") is None


def test_a_wrong_token_is_refused_by_slack(deps, slack):
    s = deps.settings.model_copy(update={"slack_bot_token": "xoxb-wrong", "slack_channel": CHANNEL,
                                         "slack_api_url": slack.api_url})
    with pytest.raises(ApplicationError) as failed:
        ActivityEnvironment().run(NotifyActivities(dataclasses.replace(deps, settings=s)).notify,
                                  _n(_wid(), "gate_opened", plan=["a?"]))
    assert failed.value.non_retryable and "invalid_auth" in str(failed.value)


def test_decided_overtaking_opened_waits_then_gives_up_and_opened_shows_the_outcome(deps, slack, notify):
    wid = _wid()
    decided = _n(wid, "decided", decision=DecisionRecord(gate="plan", decision="approve", reviewer="U0ANN",
                                                         at=DEADLINE))
    with pytest.raises(ApplicationError) as pending:
        notify(decided, attempt=1)
    assert not pending.value.non_retryable and "not posted yet" in str(pending.value)
    assert notify(decided, attempt=3).first_time  # gives up editing: recorded, nothing to edit
    assert slack.called("chat.update") == []
    # the gate message, posted late, shows the outcome instead of buttons
    notify(_n(wid, "gate_opened", plan=["a?"]))
    (msg,) = slack.top_level()
    assert _buttons(msg) == {} and "*Approved* by <@U0ANN>" in msg["blocks"][-1]["text"]["text"]


def test_long_plans_and_summaries_stay_within_slack_limits(deps, slack, notify):
    wid = _wid()
    notify(_n(wid, "gate_opened", gate="report", version=2, summary="word " * 2000,
              sources=[f"Source {i} - https://example.org/{i}" for i in range(40)]))
    (msg,) = slack.top_level()  # the fake refuses blocks Slack would refuse
    assert "… and 25 more in the Web UI" in json.dumps(msg["blocks"], ensure_ascii=False)
