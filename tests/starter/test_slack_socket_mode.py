"""The Slack bot in Socket Mode end to end: Bolt's SocketModeHandler (slack_sdk's builtin WebSocket
client, as `deepsci slack` runs it) asks the fake Web API for a URL (apps.connections.open), dials the
fake Socket Mode endpoint (tests/fakes/slack_socket.py) and gets envelopes as Slack pushes them: a
button click and `/research` commands, acked over the WebSocket; the decision lands in a real run on
the Temporal dev server. Then Slack's refresh (`disconnect`, a reconnect on a new URL), and a clean
shutdown; and `deepsci slack` itself (serve.run_bot) in Socket Mode, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler

from deepsci.contracts import ResearchRequest
from starter.slack.bot import USAGE, build_app
from starter.slack.bridge import TemporalBridge
from starter.slack.serve import missing_settings
from tests.fakes.slack import APP_TOKEN, CHANNEL, TOKEN, SlackFake
from tests.fakes.slack_socket import SocketModeFake, accept_key
from tests.helpers import CORPUS, running
from workers.main import build_workers
from workflows.research import ResearchWorkflow

ANN, EVE = "U0ANN", "U0EVE"  # ann is an approver, eve is not
DEEPSCI = str(Path(sys.executable).parent / "deepsci")


def _command(text: str, user: str, response_url: str) -> dict:
    """A slash command's payload as Socket Mode carries it: the HTTP form fields, as a JSON object."""
    return {"token": "legacy", "team_id": "T0FAKE", "team_domain": "fake", "channel_id": CHANNEL,
            "channel_name": "approvals", "user_id": user, "user_name": user.lower(), "command": "/research",
            "text": text, "api_app_id": "A0APP", "is_enterprise_install": "false",
            "response_url": response_url, "trigger_id": f"trig.{uuid.uuid4().hex[:8]}"}


async def _ack(ws: SocketModeFake, eid: str) -> dict:
    ack = await ws.until(lambda: ws.acks.get(eid), 10, f"the ack of envelope {eid}")
    assert ws.ack_times[eid] < 3, "Slack needs the ack within 3 seconds"
    return ack


async def _command_over_socket(slack: SlackFake, ws: SocketModeFake, text: str,
                               user: str = ANN) -> tuple[dict, dict | None]:
    """`/research <text>` as a slash_commands envelope: the ack, and the reply POSTed to response_url."""
    seen = len(slack.responses)
    eid = ws.send("slash_commands", _command(text, user, f"{slack.url}/response/{uuid.uuid4().hex[:8]}"),
                  accepts_response_payload=True)
    ack = await _ack(ws, eid)
    if "payload" in ack:
        return ack, None
    await slack.until(lambda: len(slack.responses) > seen, 20, f"a reply to /research {text}")
    return ack, slack.responses[-1]


@pytest.fixture
async def stack(env, deps, settings):
    """Workers posting gate messages to the fake Slack, and a Temporal bridge; the test owns the bot."""
    with SlackFake() as slack, SocketModeFake() as ws:
        slack.socket_url = ws.issue_url
        prefix = f"tsock{uuid.uuid4().hex[:6]}"
        s = settings.model_copy(update={
            "slack_bot_token": TOKEN, "slack_app_token": APP_TOKEN, "slack_signing_secret": None,
            "slack_channel": CHANNEL, "slack_api_url": slack.api_url, "slack_approvers": [ANN],
            "task_queue_prefix": prefix, "temporal_address": env.client.service_client.config.target_host})
        assert missing_settings(s, http=False) == []  # Socket Mode needs no signing secret
        async with running(build_workers(env.client, dataclasses.replace(deps, settings=s), prefix)):
            bridge = TemporalBridge(s).start()
            try:
                yield s, slack, ws, bridge, prefix
            finally:
                bridge.close()


async def test_envelopes_over_socket_mode_decide_a_gate_and_answer_commands(env, stack):
    s, slack, ws, bridge, prefix = stack
    wid = f"research-sock-{uuid.uuid4().hex[:8]}"
    req = ResearchRequest(question="How should retries use exponential backoff and jitter?", corpus=str(CORPUS),
                          max_sub_questions=2, max_revision_rounds=0)
    handle = await env.client.start_workflow(ResearchWorkflow.run, req, id=wid, task_queue=f"{prefix}-workflows")
    plan_msg = await slack.gate_message(wid, "plan", 1)

    # The bot as serve.run_bot builds it in Socket Mode; connect() instead of the blocking start().
    handler = SocketModeHandler(build_app(s, bridge), s.slack_app_token)
    client = handler.client
    try:
        await asyncio.to_thread(handler.connect)
        assert len(slack.called("apps.connections.open")) == 1 and len(ws.issued) == 1
        conn = await ws.until(lambda: ws.current, 10, "the bot to connect")
        assert conn.path == f"/link/?ticket={ws.issued[0]}&app_id=A0APP" and not ws.refused
        assert conn.headers["sec-websocket-version"] == "13" and conn.headers["upgrade"] == "websocket"
        # the client pings as soon as it is connected (we pong); our ping is ponged with its payload
        await ws.until(lambda: conn.pings, 5, "the client's first ping")
        assert conn.pings[0].decode().startswith(f"{client.session_id()}:")
        conn.ping(b"ping-from-fake-slack")
        await ws.until(lambda: b"ping-from-fake-slack" in conn.pongs, 5, "the client's pong")

        # `/research` alone: the usage comes back in the ack itself
        ack, _ = await _command_over_socket(slack, ws, "")
        assert ack["payload"] == {"text": USAGE}

        # `/research status <id>`: an empty ack at once, the answer through response_url
        ack, reply = await _command_over_socket(slack, ws, f"status {wid}")
        assert set(ack) == {"envelope_id"}
        assert reply["response_type"] == "ephemeral" and f"*{wid}* · running" in reply["text"]
        assert "waiting on the *plan* gate (version 1)" in reply["text"]

        # eve clicks Approve: acked, refused to her only, nothing decided
        seen = len(slack.ephemerals)
        eid = ws.send("interactive", slack.click(plan_msg, "Approve", EVE))
        assert await _ack(ws, eid) == {"envelope_id": eid}
        refusal = await slack.until(lambda: [e for e in slack.ephemerals[seen:] if e["user"] == EVE], 10,
                                    "the refusal to eve")
        assert "<@U0EVE> is not one of the approvers" in refusal[0]["text"]
        assert (await handle.query(ResearchWorkflow.progress)).decisions == []

        # ann clicks Approve on the gate message
        eid = ws.send("interactive", slack.click(plan_msg, "Approve", ANN))
        assert await _ack(ws, eid) == {"envelope_id": eid}  # acked with its envelope id, no payload

        deadline = time.monotonic() + 10
        while not (p := await handle.query(ResearchWorkflow.progress)).decisions:
            assert time.monotonic() < deadline, "the plan gate was not decided"
            await asyncio.sleep(0.05)
        assert [(d.gate, d.decision, d.reviewer) for d in p.decisions] == [("plan", "approve", ANN)]
        # the bot edited the gate message: buttons gone, who decided shown
        bot_edit = f"The plan of {wid}: approve by {ANN}"
        await slack.until(lambda: [u for u in slack.called("chat.update") if u.get("text") == bot_edit], 10,
                          "the bot's chat.update of the gate message")
        (edit,) = [u for u in slack.called("chat.update") if u.get("text") == bot_edit]
        assert edit["channel"] == CHANNEL and edit["ts"] == plan_msg["ts"]
        edited = slack.messages[(CHANNEL, plan_msg["ts"])]
        assert not [b for b in edited["blocks"] if b["type"] == "actions"]
        assert "*Approved* by <@U0ANN>" in edited["blocks"][-1]["text"]["text"]

        # Slack refreshes the connection: `disconnect`, then the client opens a new URL and goes on there
        ws.disconnect()
        new = await ws.until(lambda: ws.current if ws.current is not conn else None, 10, "the reconnect")
        assert len(slack.called("apps.connections.open")) == 2 and new.path.startswith(f"/link/?ticket={ws.issued[1]}")
        await ws.until(lambda: not conn.open, 10, "the old connection to close")
        _, reply = await _command_over_socket(slack, ws, f"status {wid}")
        assert f"• plan: approve by <@{ANN}>" in reply["text"]
        await ws.until(lambda: len(ws.acks) == len(ws.sent), 10, "every envelope acked")
        assert ws.problems == []
    finally:
        await asyncio.to_thread(handler.close)

    # shut down: the connection ended by the client, and none of the Socket Mode client's threads left
    await ws.until(lambda: all(not c.open for c in ws.connections), 10, "the client to hang up")
    assert ws.connections[-1].ended_by == "client hung up"
    runners = (client.current_session_runner, client.current_app_monitor, client.message_processor)
    assert all(r.thread is None for r in runners)  # IntervalRunner.shutdown() joined them
    assert not [t for t in client.message_workers._threads if t.is_alive()]
    assert not client.is_connected()
    assert len(ws.issued) == 2 and ws.problems == []
    await handle.terminate("test over")


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DEEPSCI_SLACK_"))}
    return {**base, "COLUMNS": "200", **extra}


async def test_deepsci_slack_in_socket_mode_serves_envelopes_and_stops_on_sigterm(env):
    with SlackFake() as slack, SocketModeFake() as ws:
        slack.socket_url = ws.issue_url
        proc = await asyncio.create_subprocess_exec(
            DEEPSCI, "slack",
            env=_env(SLACK_BOT_TOKEN=TOKEN, SLACK_APP_TOKEN=APP_TOKEN, DEEPSCI_SLACK_CHANNEL=CHANNEL,
                     DEEPSCI_SLACK_API_URL=slack.api_url,
                     DEEPSCI_TEMPORAL_ADDRESS=env.client.service_client.config.target_host),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            conn = await ws.until(lambda: ws.current, 30, "`deepsci slack` to connect")
            ack, _ = await _command_over_socket(slack, ws, "help")
            assert ack["payload"] == {"text": USAGE}
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), timeout=20)
        await ws.until(lambda: not conn.open, 5, "the bot to hang up")
    assert proc.returncode == 0, err.decode()
    assert "Socket Mode (Temporal" in err.decode() and "stopping" in err.decode()
    assert conn.ended_by == "client hung up" and ws.problems == []


def test_the_fake_refuses_a_used_url_and_unmasked_frames():
    """The fake's own checks, so a client that broke the protocol would fail the tests above."""
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 1.3
    with SocketModeFake() as ws:
        url = ws.issue_url().removeprefix(f"ws://127.0.0.1:{ws.port}")
        req = (f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", ws.port), timeout=5) as c:
            c.sendall(req)
            head = c.recv(4096)
            assert head.startswith(b"HTTP/1.1 101 ") and b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
            c.sendall(b"\x81\x02{}")  # an unmasked text frame
            ws.wait(lambda: ws.problems, 5, "the protocol error")
            ws.wait(lambda: not ws.connections[0].open, 5, "the close")
            data = b""
            while chunk := c.recv(4096):
                data += chunk
            assert b"\x88" in data and b"\x03\xea" in data  # a close frame, status 1002
        with socket.create_connection(("127.0.0.1", ws.port), timeout=5) as c:
            c.sendall(req)  # the same ticket again
            assert c.recv(4096).startswith(b"HTTP/1.1 403 ")
    assert "unmasked" in ws.problems[0] and len(ws.refused) == 1
    assert not [t for t in ws.threads() if t.is_alive()]
