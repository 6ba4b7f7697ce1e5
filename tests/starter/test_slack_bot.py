"""The Slack bot end to end: workers post gate messages to a fake Slack, the bot runs in HTTP mode on
loopback and gets signed clicks, modal submissions and slash commands as Slack sends them; the
decisions land in a real run on the Temporal dev server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
import uuid

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus

from deepsci.contracts import ResearchRequest
from deepsci.slack import blocks as bk
from starter.slack.bot import build_app
from starter.slack.bridge import TemporalBridge
from starter.slack.serve import EVENTS_PATH, http_server
from tests.fakes.slack import CHANNEL, SECRET, TOKEN, SlackFake, command_body, interaction_body, sign
from tests.helpers import CORPUS, running
from workers.main import build_workers
from workflows.research import ResearchWorkflow

ANN, BOB, EVE = "U0ANN", "U0BOB", "U0EVE"  # ann and bob are approvers, eve is not


@dataclasses.dataclass
class Stack:
    slack: SlackFake
    url: str
    prefix: str
    client: object

    async def post(self, body: str, headers: dict | None = None) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.post(self.url, content=body, headers=headers if headers is not None else sign(body))

    async def gate_message(self, wid: str, gate: str, version: int) -> dict:
        return await self.slack.gate_message(wid, gate, version)

    def message(self, ts: str) -> dict:
        return self.slack.messages[(CHANNEL, ts)]

    async def click(self, msg: dict, label: str, user: str, value: str | None = None) -> httpx.Response:
        payload = self.slack.click(msg, label, user, value)
        started = time.monotonic()
        resp = await self.post(interaction_body(payload))
        assert time.monotonic() - started < 3, "Slack needs the ack within 3 seconds"
        return resp

    async def submit(self, view: dict, user: str, value: str) -> httpx.Response:
        (block,) = view["blocks"]
        action_id = block["element"]["action_id"]
        state = {"values": {block["block_id"]: {action_id: {"type": "plain_text_input", "value": value}}}}
        payload = {"type": "view_submission", "token": "legacy", "api_app_id": "A0APP",
                   "trigger_id": self.slack.trigger(), "team": {"id": "T0FAKE", "domain": "fake"},
                   "user": {"id": user, "username": user.lower(), "team_id": "T0FAKE"},
                   "view": {**view, "state": state, "team_id": "T0FAKE", "app_id": "A0APP"}}
        return await self.post(interaction_body(payload))

    async def command(self, text: str, user: str = ANN) -> tuple[httpx.Response, dict | None]:
        """`/research <text>`; returns the HTTP answer (the ack) and the reply sent to response_url."""
        rid = uuid.uuid4().hex[:8]
        seen = len(self.slack.responses)
        resp = await self.post(command_body(text, user, f"{self.slack.url}/response/{rid}"))
        if resp.status_code != 200 or resp.content:
            return resp, None
        await self.slack.until(lambda: len(self.slack.responses) > seen, 30, f"a reply to /research {text}")
        return resp, self.slack.responses[-1]

    async def ephemeral_for(self, user: str, seen: int) -> dict:
        await self.slack.until(lambda: [e for e in self.slack.ephemerals[seen:] if e["user"] == user],
                               20, f"an ephemeral message to {user}")
        return [e for e in self.slack.ephemerals[seen:] if e["user"] == user][-1]

    async def progress(self, wid: str):
        return await self.client.get_workflow_handle_for(ResearchWorkflow.run, wid).query(ResearchWorkflow.progress)


@pytest.fixture(scope="module")
async def stack(env, deps, settings):
    with SlackFake() as slack:
        slack_fields = {"slack_bot_token": TOKEN, "slack_signing_secret": SECRET, "slack_channel": CHANNEL,
                        "slack_api_url": slack.api_url, "slack_approvers": [ANN, BOB]}
        prefix = f"tslack{uuid.uuid4().hex[:6]}"
        s = settings.model_copy(update={**slack_fields, "task_queue_prefix": prefix,
                                        "temporal_address": env.client.service_client.config.target_host})
        async with running(build_workers(env.client, dataclasses.replace(deps, settings=s), prefix)):
            bridge = TemporalBridge(s).start()
            server = http_server(build_app(s, bridge), SECRET, "127.0.0.1", 0)
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            try:
                yield Stack(slack, f"http://127.0.0.1:{server.server_port}{EVENTS_PATH}", prefix, env.client)
            finally:
                server.shutdown()
                server.server_close()
                bridge.close()


async def _start(stack: Stack, **kw) -> str:
    wid = f"research-slack-{uuid.uuid4().hex[:8]}"
    req = ResearchRequest(question="How should retries use exponential backoff and jitter?", corpus=str(CORPUS),
                          max_sub_questions=2, max_revision_rounds=0, **kw)
    await stack.client.start_workflow(ResearchWorkflow.run, req, id=wid, task_queue=f"{stack.prefix}-workflows")
    return wid


def _outcome(msg: dict) -> str:
    assert not [b for b in msg["blocks"] if b["type"] == "actions"], "the buttons are still there"
    return msg["blocks"][-1]["text"]["text"]


async def test_research_command_then_edit_plan_request_changes_and_approve(stack):
    # /research starts a run whose reviewers are the Slack approvers
    question = "What is full jitter in retry backoff and when should clients use it?"
    ack, reply = await stack.command(question)
    assert ack.status_code == 200 and reply["response_type"] == "in_channel"
    (wid,) = [w for w in reply["text"].split("`") if w.startswith("research-")][:1]
    assert f"/namespaces/default/workflows/{wid}|Open in Temporal Web UI" in reply["text"]
    plan_msg = await stack.gate_message(wid, "plan", 1)

    _, status = await stack.command(f"status {wid}")
    assert "waiting on the *plan* gate (version 1)" in status["text"] and status["response_type"] == "ephemeral"

    # Edit plan: the modal is prefilled with the run's plan, one sub-question per line
    p = await stack.progress(wid)
    assert p.plan and len(p.plan) > 1
    await stack.click(plan_msg, "Edit plan", ANN)
    view = await stack.slack.until(lambda: stack.slack.views[-1:], 10, "the edit-plan modal")
    view = view[0]
    assert view["blocks"][0]["element"]["initial_value"].splitlines() == p.plan
    empty = await stack.submit(view, ANN, "  \n ")
    assert empty.json()["response_action"] == "errors"  # shown in the modal; nothing is decided
    edited = "What is full jitter?"
    assert (await stack.submit(view, ANN, f"1. {edited}\n")).status_code == 200

    report_msg = await stack.gate_message(wid, "report", 2)
    p = await stack.progress(wid)
    assert p.plan == [edited] and p.sub_questions_done == 1  # the run follows the edited plan
    outcome = _outcome(stack.message(plan_msg["ts"]))
    assert "*Approved with an edited plan* by <@U0ANN>" in outcome and f"1. {edited}" in outcome
    text = json.dumps(report_msg["blocks"])
    assert "Report summary" in text and "Sources" in text and "file://" in text

    # Request changes: a modal for the comment, then one more round and version 3 of the report
    await stack.click(report_msg, "Request changes", BOB)
    await stack.slack.until(lambda: len(stack.slack.views) == 2, 10, "the request-changes modal")
    await stack.submit(stack.slack.views[-1], BOB, "Say more about thundering herds.")
    v3 = await stack.gate_message(wid, "report", 3)
    outcome = _outcome(stack.message(report_msg["ts"]))
    assert "*Changes requested* by <@U0BOB>" in outcome and "> Say more about thundering herds." in outcome

    # the old message, still on someone's screen: the workflow refuses version 2 as stale
    seen = len(stack.slack.ephemerals)
    await stack.click(report_msg, "Approve", ANN)
    refusal = await stack.ephemeral_for(ANN, seen)
    assert "stale decision" in refusal["text"] and "version 3 is shown now" in refusal["text"]

    await stack.click(v3, "Approve", ANN)
    result = await stack.client.get_workflow_handle_for(ResearchWorkflow.run, wid).result()
    assert result.status == "published"
    assert [(d.gate, d.decision, d.reviewer) for d in result.decisions] == [
        ("plan", "approve", ANN), ("report", "request_changes", BOB), ("report", "approve", ANN)]
    assert "*Approved* by <@U0ANN>" in _outcome(stack.message(v3["ts"]))


async def test_refusals_are_shown_to_the_clicker_only_and_change_nothing(stack):
    wid = await _start(stack)
    msg = await stack.gate_message(wid, "plan", 1)
    calls = len(stack.slack.calls)

    # a forged signature, and a correctly signed but 6 minute old request: refused before any listener
    payload = interaction_body({"type": "block_actions", "user": {"id": ANN}, "actions": [
        {"action_id": bk.ACTION_REJECT, "value": bk.GateRef(wid, "plan", 1).value()}]})
    forged = await stack.post(payload, sign(payload, secret="not-the-secret"))
    old = await stack.post(payload, sign(payload, timestamp=int(time.time()) - 360))
    unsigned = await stack.post(payload, {"Content-Type": "application/x-www-form-urlencoded"})
    assert (forged.status_code, old.status_code, unsigned.status_code) == (401, 401, 401)

    # eve is not an approver
    seen = len(stack.slack.ephemerals)
    await stack.click(msg, "Approve", EVE)
    refusal = await stack.ephemeral_for(EVE, seen)
    assert "<@U0EVE> is not one of the approvers" in refusal["text"] and refusal["channel"] == CHANNEL
    await asyncio.sleep(0.3)
    p = await stack.progress(wid)
    assert p.open_gate == "plan" and p.decisions == []  # the run still waits
    assert [m for m, _ in stack.slack.calls[calls:]] == ["chat.postEphemeral"]  # nothing else happened

    # ann rejects; her second click does not decide twice
    await stack.click(msg, "Reject", ANN)
    result = await stack.client.get_workflow_handle_for(ResearchWorkflow.run, wid).result()
    assert result.status == "rejected" and "plan rejected by U0ANN" in result.message
    await stack.slack.until(lambda: "Rejected" in stack.message(msg["ts"])["blocks"][-1]["text"]["text"])
    assert "*Rejected* by <@U0ANN>" in _outcome(stack.message(msg["ts"]))
    seen = len(stack.slack.ephemerals)
    await stack.click(msg, "Reject", ANN)
    again = await stack.ephemeral_for(ANN, seen)
    assert "already closed: rejected by <@U0ANN>" in again["text"] and "Nothing was changed" in again["text"]
    # bob, on the same (closed) gate
    await stack.click(msg, "Approve", BOB)
    closed = await stack.ephemeral_for(BOB, seen)
    assert "the plan gate is already closed" in closed["text"]
    result = await stack.client.get_workflow_handle_for(ResearchWorkflow.run, wid).result()
    assert [(d.decision, d.reviewer) for d in result.decisions] == [("reject", ANN)]

    # a run that does not exist
    seen = len(stack.slack.ephemerals)
    await stack.click(msg, "Approve", ANN, value=bk.GateRef("research-no-such-run", "plan", 1).value())
    unknown = await stack.ephemeral_for(ANN, seen)
    assert "unknown run `research-no-such-run`" in unknown["text"]


async def test_the_workflow_validator_has_the_last_word(stack):
    # bob may click in Slack, but this run (started from the CLI) only takes ann
    wid = await _start(stack, allowed_reviewers=[ANN])
    msg = await stack.gate_message(wid, "plan", 1)
    seen = len(stack.slack.ephemerals)
    await stack.click(msg, "Approve", BOB)
    refusal = await stack.ephemeral_for(BOB, seen)
    assert "reviewer 'U0BOB' may not decide on this run" in refusal["text"]
    assert (await stack.progress(wid)).open_gate == "plan"
    assert stack.message(msg["ts"])["blocks"] == msg["blocks"]  # still the buttons
    await stack.click(msg, "Reject", ANN)
    assert (await stack.client.get_workflow_handle_for(ResearchWorkflow.run, wid).result()).status == "rejected"


async def test_research_command_usage_status_and_bad_input(stack):
    ack, _ = await stack.command("")
    assert "Usage: `/research <question>`" in ack.text
    _, reply = await stack.command("status research-no-such-run")
    assert "unknown run `research-no-such-run`" in reply["text"] and reply["response_type"] == "ephemeral"
    _, reply = await stack.command("ab")
    assert "Not started" in reply["text"]
    body = command_body("status x", ANN, f"{stack.slack.url}/response/forged")
    assert (await stack.post(body, sign(body, secret="wrong"))).status_code == 401


async def test_research_asked_again_attaches_or_starts_a_new_run_like_the_cli(stack):
    question = "Why do retry storms follow an outage, and how does jitter spread them?"
    _, first = await stack.command(question)
    (wid,) = [w for w in first["text"].split("`") if w.startswith("research-")][:1]
    assert f"started `{wid}`" in first["text"] and "new run" not in first["text"], first["text"]
    msg = await stack.gate_message(wid, "plan", 1)

    _, again = await stack.command(question)  # still waiting at the plan gate: the same run
    assert f"attached to the running run `{wid}`" in again["text"], again["text"]

    await stack.click(msg, "Reject", ANN)
    handle = stack.client.get_workflow_handle_for(ResearchWorkflow.run, wid)
    assert (await handle.result()).status == "rejected"
    _, anew = await stack.command(question)  # a rejected run is asked again under the same id
    assert f"started a new run `{wid}` (the earlier one rejected)" in anew["text"], anew["text"]
    desc = await stack.client.get_workflow_handle(wid).describe()
    assert desc.status == WorkflowExecutionStatus.RUNNING
    await stack.client.get_workflow_handle(wid).terminate("test over")
