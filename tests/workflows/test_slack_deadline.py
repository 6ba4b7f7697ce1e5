"""Gate deadlines in Slack, on the time-skipping server: the gate message, reminders and the
escalation as replies in its thread, and the message edited when the deadline decides."""

from __future__ import annotations

import dataclasses
import uuid

from deepsci.contracts import ResearchRequest
from tests.fakes.slack import CHANNEL, TOKEN, SlackFake
from tests.helpers import CORPUS, running
from workers.main import build_workers
from workflows.research import ResearchWorkflow

HOUR = 3600.0


async def test_reminders_escalation_and_expiry_in_the_gate_messages_thread(skipping_env, deps):
    with SlackFake() as slack:
        s = deps.settings.model_copy(update={"slack_bot_token": TOKEN, "slack_channel": CHANNEL,
                                             "slack_api_url": slack.api_url})
        prefix = f"tss{uuid.uuid4().hex[:8]}"
        slack.fail("chat.postMessage", status=429, retry_after="20")  # the first post is rate limited
        wid = f"research-slack-deadline-{prefix}"
        async with running(build_workers(skipping_env.client, dataclasses.replace(deps, settings=s), prefix)):
            result = await skipping_env.client.execute_workflow(
                ResearchWorkflow.run,
                ResearchRequest(question="What is full jitter in retry backoff?", corpus=str(CORPUS),
                                max_sub_questions=1, gate_deadline_s=24 * HOUR, reminder_interval_s=10 * HOUR,
                                deadline_policy="escalate", allowed_reviewers=["U0ANN"],
                                escalation_reviewers=["U0CAROL"]),
                id=wid, task_queue=f"{prefix}-workflows")

    assert result.status == "rejected" and result.decisions[0].reviewer == "deadline"
    (msg,) = slack.top_level()  # one gate message, despite the rate-limited first attempt
    assert len(slack.called("chat.postMessage")) == 2 + 5  # 429, the message; then 5 thread replies
    # reminders at 10 h and 20 h, the escalation at 24 h, reminders at 34 h and 44 h, rejected at 48 h
    replies = slack.replies(msg["ts"])
    kinds = [r["text"].split(" ", 1)[0] for r in replies]
    assert kinds == [":alarm_clock:"] * 2 + [":rotating_light:"] + [":alarm_clock:"] * 2
    assert replies[0]["text"].startswith(":alarm_clock: <@U0ANN>: the plan gate is waiting for a decision")
    escalation = replies[2]
    assert escalation["text"].startswith(":rotating_light: <@U0CAROL>: no decision on the plan gate within 86400s")
    assert escalation["reply_broadcast"] and "New deadline <!date^" in escalation["text"]
    # the deadline's decision replaced the buttons
    assert not [b for b in msg["blocks"] if b["type"] == "actions"]
    outcome = msg["blocks"][-1]["text"]["text"]
    assert outcome.startswith(":x: *Rejected* at the deadline") and "after escalating to U0CAROL" in outcome
    assert len(slack.called("chat.update")) == 1
