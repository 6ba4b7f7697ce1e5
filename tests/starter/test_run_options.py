"""`deepsci run`'s request options come from ResearchRequest: the help shows the model's defaults,
bounds and descriptions, a run started without options asks for the model's defaults, and a value
the model refuses (out of bounds, NaN, inf) is one line and exit code 2, before anything starts."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from deepsci.contracts import ResearchRequest
from deepsci.temporal_client import DATA_CONVERTER
from starter.cli.options import bounds_text
from starter.cli.runs import REQUEST_FLAGS
from tests.fakes.web import ArxivFake
from tests.helpers import DEEPSCI
from tests.helpers import deepsci_cli as _deepsci

QUESTION = "What does full jitter do to retry storms?"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([DEEPSCI, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "400", **env})


def test_run_help_shows_the_models_defaults_bounds_and_help():
    out = _cli("run", "--help").stdout
    lines = {ln.split()[1]: ln for ln in out.splitlines() if ln.startswith("│ ") and "--" in ln}
    for name, field in REQUEST_FLAGS.items():
        info = ResearchRequest.model_fields[field]
        line = lines[_flag(name)]
        assert info.description in line and bounds_text(info) in line, line
        if info.default not in (None, False):
            assert f"[default: {info.default}]" in line, line
    assert "[0<x<=31536000]" in lines["--gate-deadline"]  # 365 days, said where a user reads it
    assert "<reject|approve|escalate>" in lines["--deadline-policy"]
    for switch in ("--json", "--wait", "--auto-approve"):
        assert "<bool>" not in lines[switch], lines[switch]


@pytest.mark.parametrize("args", [
    ("--gate-deadline", "inf"), ("--gate-deadline", "nan"), ("--gate-deadline", "1e12"),
    ("--reminder-interval", "0"), ("--max-sources", "26"), ("--budget-usd", "-inf"), ("--quota-park", "nan"),
])
def test_a_value_the_model_refuses_is_one_line_and_exit_code_2(args):
    # No server is reachable on port 1: a refusal must come before any connection.
    res = _cli("run", QUESTION, *args, DEEPSCI_TEMPORAL_ADDRESS="127.0.0.1:1")
    assert res.returncode == 2, res.stderr
    assert res.stdout == "" and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert res.stderr.startswith(f"error: {args[0]}: Input should be"), res.stderr


def test_a_gate_name_outside_plan_and_report_is_a_usage_error():
    res = _cli("approve", "research-x", "--gate", "plans", DEEPSCI_TEMPORAL_ADDRESS="127.0.0.1:1")
    assert res.returncode == 2 and "'plan', 'report'" in res.stderr and "Traceback" not in res.stderr


async def _started_request(env, wid: str) -> ResearchRequest:
    handle = env.client.get_workflow_handle(wid)
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [req] = await DATA_CONVERTER.decode(started.input.payloads, [ResearchRequest])
    await handle.terminate("test: only its input was wanted")
    return req


async def test_run_asks_for_the_models_defaults_and_maps_every_flag(env, settings):
    # A task queue no worker polls: the run is started (its input is in history) and never runs.
    prefix = f"t{uuid.uuid4().hex[:10]}"
    arxiv = ArxivFake().start()  # `run` checks that a web provider answers before it starts a run
    e = {**os.environ, "DEEPSCI_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
         "DATABASE_URL": settings.dsn, "DEEPSCI_HOME": str(settings.home_dir),
         "DEEPSCI_TASK_QUEUE_PREFIX": prefix, "DEEPSCI_REVIEWERS": "ann,bob",
         "DEEPSCI_ESCALATION_REVIEWERS": "carol", "DEEPSCI_ARXIV_URL": arxiv.url}

    code, _, err = await _deepsci(e, "run", QUESTION, "--id", f"{prefix}-defaults", "--json")
    assert code == 0, err
    req = await _started_request(env, f"research-{prefix}-defaults")
    assert req == ResearchRequest(question=QUESTION, allowed_reviewers=["ann", "bob"],
                                  escalation_reviewers=["carol"])

    code, _, err = await _deepsci(
        e, "run", QUESTION, "--id", f"{prefix}-flags", "--json", "--auto-approve", "--max-sub-questions", "2",
        "--max-sources", "7", "--max-rounds", "0", "--gate-deadline", "60", "--deadline-policy", "escalate",
        "--reminder-interval", "30", "--budget-usd", "0.5", "--max-llm-calls", "9", "--budget-wait", "90",
        "--quota-park", "45", "--reviewer", "dan", "--escalation-reviewer", "eve", "--search", "local,arxiv")
    assert code == 0, err
    req = await _started_request(env, f"research-{prefix}-flags")
    assert req.model_dump(exclude={"question", "corpus", "evidence_per_sub_question", "quota_max_parks"}) == {
        "search": ["local", "arxiv"], "max_sub_questions": 2, "max_sources_per_sub_question": 7,
        "max_revision_rounds": 0, "gate_deadline_s": 60, "deadline_policy": "escalate", "auto_approve": True,
        "allowed_reviewers": ["dan"], "reminder_interval_s": 30, "escalation_reviewers": ["eve"],
        "budget_usd": 0.5, "max_llm_calls": 9, "budget_wait_s": 90, "quota_park_s": 45}
