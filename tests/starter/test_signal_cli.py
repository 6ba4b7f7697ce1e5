"""The Signal path as the README shows it: `temporal workflow signal --name decide_signal --input
'<plain JSON GateDecision>'`, with the `temporal` binary against the dev server."""

from __future__ import annotations

import asyncio
import json
import subprocess

from deepsci.contracts import ResearchRequest
from starter.stack import temporal_binary
from tests.helpers import CORPUS, start_run, wait_for_gate
from workflows.research import ResearchWorkflow


async def _signal(env, wid: str, decision: dict) -> None:
    proc = await asyncio.create_subprocess_exec(
        temporal_binary(), "workflow", "signal", "--address", env.client.service_client.config.target_host,
        "--namespace", "default", "--workflow-id", wid, "--name", "decide_signal", "--input", json.dumps(decision),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, (out.decode(), err.decode())


async def test_decide_signal_from_the_temporal_cli(env, worker):
    req = ResearchRequest(question="What is full jitter in retry backoff?", corpus=str(CORPUS),
                          max_sub_questions=1, max_revision_rounds=0, allowed_reviewers=["alice"])
    handle = await start_run(env.client, worker, req)
    await wait_for_gate(handle, "plan")

    # refused signals are logged and dropped: a reviewer not allowed, a stale version
    await _signal(env, handle.id, {"gate": "plan", "decision": "approve", "reviewer": "mallory"})
    await _signal(env, handle.id, {"gate": "plan", "decision": "approve", "reviewer": "alice", "version": 9})
    await asyncio.sleep(0.5)
    p = await handle.query(ResearchWorkflow.progress)
    assert p.open_gate == "plan" and p.decisions == []

    # the README's command
    await _signal(env, handle.id, {"gate": "plan", "decision": "approve", "reviewer": "alice"})
    p = await wait_for_gate(handle, "report")
    assert [(d.gate, d.decision, d.reviewer) for d in p.decisions] == [("plan", "approve", "alice")]
    await _signal(env, handle.id, {"gate": "report", "decision": "reject", "reviewer": "alice",
                                   "comment": "weak sources", "version": p.gate_version})
    result = await handle.result()
    assert result.status == "rejected" and result.message == "report rejected by alice: weak sources"
