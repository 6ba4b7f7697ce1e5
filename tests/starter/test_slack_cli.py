"""`deepsci slack` as an operator runs it: a subprocess that says what is missing, serves signed
requests in HTTP mode, and exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from tests.fakes.otlp import OtlpSink
from tests.fakes.slack import CHANNEL, SECRET, TOKEN, SlackFake, command_body, sign
from tests.helpers import free_port
from workflows import search_attributes as sa

DEEPSCI = str(Path(sys.executable).parent / "deepsci")


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DEEPSCI_SLACK_"))}
    return {**base, "COLUMNS": "200", **extra}


def test_missing_tokens_are_named():
    socket_mode = subprocess.run([DEEPSCI, "slack"], env=_env(SLACK_BOT_TOKEN=TOKEN),
                                 capture_output=True, text=True, timeout=60)
    assert socket_mode.returncode == 2
    assert "Socket Mode needs" in socket_mode.stderr and "SLACK_APP_TOKEN" in socket_mode.stderr
    assert "deepsci slack --http" in socket_mode.stderr
    http = subprocess.run([DEEPSCI, "slack", "--http"], env=_env(), capture_output=True, text=True, timeout=60)
    assert http.returncode == 2
    assert "SLACK_BOT_TOKEN" in http.stderr and "SLACK_SIGNING_SECRET" in http.stderr


async def test_http_mode_serves_signed_requests_and_stops_on_sigterm(env):
    """Also: `/research` starts its run inside a trace of the bot's (service deepsci-slack), whose id
    the reply shows and the run carries as its DeepsciTraceId search attribute."""
    port = free_port()
    prefix = f"slk{uuid.uuid4().hex[:8]}"  # no worker polls it: the run only has to start
    question = f"How do retry budgets cap retries ({uuid.uuid4().hex[:6]})?"
    wid = None
    with SlackFake() as slack, OtlpSink() as sink:
        proc = await asyncio.create_subprocess_exec(
            DEEPSCI, "slack", "--http", "--host", "127.0.0.1", "--port", str(port),
            env=_env(SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, DEEPSCI_SLACK_CHANNEL=CHANNEL,
                     DEEPSCI_SLACK_API_URL=slack.api_url, DEEPSCI_TASK_QUEUE_PREFIX=prefix,
                     DEEPSCI_TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
                     OTEL_EXPORTER_OTLP_ENDPOINT=sink.url, OTEL_BSP_SCHEDULE_DELAY="200"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            url = f"http://127.0.0.1:{port}/slack/events"
            body = command_body("", "U0ANN", f"{slack.url}/response/cli")
            async with httpx.AsyncClient(timeout=5) as http:
                resp = None
                for _ in range(300):
                    try:
                        resp = await http.post(url, content=body, headers=sign(body))
                        break
                    except httpx.ConnectError:
                        if proc.returncode is not None:  # it exited: no point waiting for the port
                            break
                        await asyncio.sleep(0.1)
                assert resp is not None, f"the bot never served on port {port} (exit code {proc.returncode})"
                assert resp.status_code == 200 and "Usage: `/research <question>`" in resp.text
                forged = await http.post(url, content=body, headers=sign(body, secret="nope"))
                assert forged.status_code == 401
                research = command_body(question, "U0ANN", f"{slack.url}/response/research")
                assert (await http.post(url, content=research, headers=sign(research))).status_code == 200
            await slack.until(lambda: slack.responses, 30, "a reply to /research")
            reply = slack.responses[-1]["text"]
            wid = next(w for w in reply.split("`") if w.startswith("research-"))
            desc = await env.client.get_workflow_handle(wid).describe()
            trace_id = desc.typed_search_attributes.get(sa.TRACE_ID)
            assert trace_id and len(trace_id) == 32 and int(trace_id, 16), trace_id
            assert f"traces/{trace_id}|Open the trace>" in reply, reply
        finally:
            if wid is not None:
                await env.client.get_workflow_handle(wid).terminate("test over")
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), timeout=20)
            print(err.decode())  # the bot's log, shown by pytest when an assertion above fails
    assert proc.returncode == 0, err.decode()
    assert "HTTP mode on http://127.0.0.1" in err.decode() and "stopping" in err.decode()
    assert slack.called("auth.test")  # the token is checked at start-up
    # the run's root span left the bot (flushed at the latest when it stopped), in that trace
    (root,) = [sp for sp in sink.spans if sp.name == "research run"]
    assert (root.trace_id, root.service, root.attributes["deepsci.run_id"]) == (trace_id, "deepsci-slack", wid)
    assert any(sp.name == "StartWorkflow:ResearchWorkflow" and sp.trace_id == trace_id for sp in sink.spans)


async def test_a_bad_token_stops_the_start(env):
    with SlackFake() as slack:
        proc = await asyncio.create_subprocess_exec(
            DEEPSCI, "slack", "--http", "--host", "127.0.0.1", "--port", str(free_port()),
            env=_env(SLACK_BOT_TOKEN="xoxb-revoked", SLACK_SIGNING_SECRET=SECRET,
                     DEEPSCI_SLACK_API_URL=slack.api_url,
                     DEEPSCI_TEMPORAL_ADDRESS=env.client.service_client.config.target_host),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 1 and "could not start" in err.decode(), err.decode()


async def test_socket_mode_is_the_default_with_an_app_token(env):
    # Socket Mode opens its WebSocket URL through apps.connections.open (on DEEPSCI_SLACK_API_URL);
    # the fake refuses the app token, and the bot says so instead of hanging.
    with SlackFake() as slack:
        proc = await asyncio.create_subprocess_exec(
            DEEPSCI, "slack",
            env=_env(SLACK_BOT_TOKEN=TOKEN, SLACK_APP_TOKEN="xapp-1-revoked", DEEPSCI_SLACK_CHANNEL=CHANNEL,
                     DEEPSCI_SLACK_API_URL=slack.api_url,
                     DEEPSCI_TEMPORAL_ADDRESS=env.client.service_client.config.target_host),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 1, err.decode()
    assert "Socket Mode" in err.decode() and "invalid_auth" in err.decode()
    assert slack.called("apps.connections.open")
