"""The `deepsci` CLI as a user runs it: a real subprocess against the test servers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

from tests.helpers import CORPUS, DEEPSCI, wait_for_gate
from tests.helpers import cli_env as _env
from tests.helpers import deepsci_cli as _deepsci


def test_help_lists_every_command():
    out = subprocess.run([DEEPSCI, "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("run", "status", "approve", "reject", "result", "up", "down", "worker", "demo", "eval",
                "raise-budget", "slack", "pending"):
        assert f" {cmd} " in out, cmd


async def test_run_wait_json_prints_the_report_contract(env, worker, settings):
    e = _env(env, settings, worker)
    code, out, err = await _deepsci(
        e, "run", "What does a circuit breaker do in the half-open state?", "--corpus", str(CORPUS),
        "--auto-approve", "--wait", "--json", "--max-sub-questions", "2", "--id", f"cli-{worker}")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["workflow_id"] == f"research-cli-{worker}" and doc["status"] == "published"
    assert doc["mode"] == "offline" and doc["citations"] and doc["report_markdown"].startswith("# ")
    for c in doc["citations"]:
        assert set(c) == {"n", "ref", "source_id", "title", "uri", "locator", "quote", "claim"}
    code, out, _ = await _deepsci(e, "result", f"research-cli-{worker}", "--json")
    assert code == 0 and json.loads(out) == doc


async def test_approve_and_reject_from_the_cli(env, worker, settings):
    e = _env(env, settings, worker)
    code, out, err = await _deepsci(e, "run", "How long should a heartbeat timeout be?", "--corpus",
                                    str(CORPUS), "--json", "--max-sub-questions", "1")
    assert code == 0, err
    wid = json.loads(out)["workflow_id"]
    handle = env.client.get_workflow_handle(wid)
    await wait_for_gate(handle, "plan")

    code, out, err = await _deepsci(e, "approve", wid, "--gate", "report", "--reviewer", "ann")
    assert code == 2 and "gate 'report' is not open" in err

    code, out, err = await _deepsci(e, "status", wid, "--json")
    assert code == 0 and json.loads(out)["open_gate"] == "plan"

    code, out, err = await _deepsci(e, "approve", wid, "--gate", "plan", "--reviewer", "ann", "--json")
    assert code == 0 and json.loads(out)["accepted"] is True
    await wait_for_gate(handle, "report")
    code, out, err = await _deepsci(e, "reject", wid, "--gate", "report", "--reviewer", "ann",
                                    "--comment", "not convincing")
    assert code == 0, err
    code, out, err = await _deepsci(e, "result", wid, "--json")
    doc = json.loads(out)
    assert doc["status"] == "rejected" and doc["report_markdown"]


async def test_unknown_and_finished_runs_get_one_line_errors(env, worker, settings):
    e = _env(env, settings, worker)
    code, out, err = await _deepsci(e, "result", "research-does-not-exist", "--json")
    assert code == 4 and "no such run" in err and "Traceback" not in err
    code, out, err = await _deepsci(
        e, "run", "What is a dead letter queue?", "--corpus", str(CORPUS), "--auto-approve", "--wait",
        "--max-sub-questions", "1", "--id", f"done-{worker}")
    assert code == 0, err
    # the progress printed at the end: the stage row has no count (not `0/?`), the link one line
    assert "stage: published" in err and "0/?" not in err and "sub-questions" in err, err
    assert f"/workflows/research-done-{worker}" in err.splitlines()[2], err
    code, out, err = await _deepsci(e, "approve", f"research-done-{worker}", "--gate", "plan")
    assert code == 2 and "already finished" in err and "Traceback" not in err


def test_unknown_search_provider_is_refused_before_anything_starts():
    proc = subprocess.run([DEEPSCI, "run", "What is jitter?", "--search", "local,altavista"],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 1 and "--search takes a comma-separated list" in proc.stderr


async def test_a_run_stopped_by_max_llm_calls_resumes_after_raise_budget(env, worker, settings):
    from workflows.research import ResearchWorkflow

    e = _env(env, settings, worker)
    code, out, err = await _deepsci(
        e, "run", "What does a circuit breaker do in the half-open state?", "--corpus", str(CORPUS),
        "--auto-approve", "--json", "--max-sub-questions", "2", "--max-llm-calls", "1",
        "--id", f"budget-{worker}")
    assert code == 0, err
    wid = json.loads(out)["workflow_id"]
    handle = env.client.get_workflow_handle(wid)
    for _ in range(300):
        p = await handle.query(ResearchWorkflow.progress)
        if p.budget_stop:
            break
        await asyncio.sleep(0.1)
    assert p.stage == "budget-exhausted" and "max_llm_calls 1 reached" in p.budget_stop
    code, out, err = await _deepsci(e, "raise-budget", wid, "--calls", "1", "--json")
    assert code == 2 and json.loads(out)["accepted"] is False and "not above the calls already made" in err
    code, out, err = await _deepsci(e, "raise-budget", wid, "--calls", "50", "--json")
    assert code == 0, err
    assert json.loads(out)["max_llm_calls"] == 50
    code, out, err = await _deepsci(e, "result", wid, "--wait", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "published"
