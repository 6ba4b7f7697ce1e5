"""The replay gate: saved histories of real runs replay against the current workflow code, and a
non-deterministic change is caught (by the Replayer and by `deepsci replay`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from deepsci.contracts import GateDecision, ResearchRequest
from starter.replay import load_history_file, replay_histories
from tests.helpers import CORPUS, running, start_run, wait_for_gate
from tests.workflows.nondeterministic_variant import ResearchWorkflowWithExtraStep
from workers.main import build_workers
from workflows.investigate import InvestigateWorkflow
from workflows.research import ResearchWorkflow

HISTORIES = Path(__file__).parent.parent / "histories"
TAG = os.environ.get("DEEPSCI_RECORD_TAG", "rec")  # a new tag keeps older histories beside new ones
SCENARIOS = ("happy-path", "plan-rejected", "revision-rounds", "crash-recovered", "model-budget-quota",
             "budget-exhausted")


def _saved() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


async def test_saved_histories_replay_on_current_code():
    files = _saved()
    assert {f.name.split("__")[0] for f in files} >= set(SCENARIOS), "a saved scenario is missing"
    outcomes = await replay_histories([load_history_file(f) for f in files])
    bad = [o for o in outcomes if not o.ok]
    assert not bad, bad
    assert {o.workflow_type for o in outcomes} == {"ResearchWorkflow", "InvestigateWorkflow"}


async def test_a_non_deterministic_change_is_caught():
    happy = [load_history_file(f) for f in _saved()
             if f.name.startswith("happy-path__") and "_investigate_" not in f.name]
    assert happy
    outcomes = await replay_histories(happy, workflows=[ResearchWorkflowWithExtraStep, InvestigateWorkflow])
    assert outcomes and not any(o.ok for o in outcomes)
    assert "nondetermin" in outcomes[0].error.lower()


async def test_replay_cli_exits_non_zero_and_names_the_workflow(env, deps, tmp_path):
    # A history written by the variant replays against the real code as a mismatch.
    prefix = f"v{uuid.uuid4().hex[:8]}"
    from temporalio.worker import Worker

    w = Worker(env.client, task_queue=f"{prefix}-workflows",
               workflows=[ResearchWorkflowWithExtraStep, InvestigateWorkflow])
    task = asyncio.ensure_future(w.run())
    try:
        handle = await start_run(env.client, prefix, ResearchRequest(question="What is jitter?", max_sub_questions=1))
        for _ in range(100):  # wait until the variant's timer fired and planning was scheduled
            events = [e async for e in handle.fetch_history_events()]
            if any(e.HasField("activity_task_scheduled_event_attributes") for e in events):
                break
            await asyncio.sleep(0.1)
        await handle.terminate("test done")
        history = await handle.fetch_history()
    finally:
        await w.shutdown()
        task.cancel()
    path = tmp_path / "variant.json"
    path.write_text(json.dumps({"workflow_id": history.workflow_id, "history": history.to_json_dict()}))
    deepsci = str(Path(sys.executable).parent / "deepsci")
    proc = subprocess.run([deepsci, "replay", "--file", str(path)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "300"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL ResearchWorkflow " + history.workflow_id in proc.stdout
    assert "1 replayed, 1 non-deterministic" in proc.stdout


# ---------------------------------------------------------------- recording (run by hand)


@pytest.mark.skipif(not os.environ.get("DEEPSCI_RECORD_HISTORIES"),
                    reason="records tests/histories; set DEEPSCI_RECORD_HISTORIES=1 to refresh")
async def test_record_histories(env, worker, deps, settings):
    client = env.client

    async def save(scenario: str, handle) -> None:
        ids = [handle.id] + [f"{handle.id}/investigate/sq{i}" for i in range(1, 13)]
        for wid in ids:
            try:
                h: WorkflowHistory = await client.get_workflow_handle(wid).fetch_history()
            except Exception:  # noqa: BLE001 - fewer children than 12
                continue
            name = wid.replace("/", "_")
            (HISTORIES / f"{scenario}__{name}.json").write_text(
                json.dumps({"workflow_id": wid, "history": h.to_json_dict()}, indent=1))

    req = {"corpus": str(CORPUS), "max_sub_questions": 2}
    h = await start_run(client, worker, ResearchRequest(question="How does full jitter spread retries?",
                                                        auto_approve=True, **req), f"research-{TAG}-happy")
    await h.result()
    await save("happy-path", h)

    h = await start_run(client, worker, ResearchRequest(question="What is a heartbeat timeout?", **req),
                        f"research-{TAG}-reject")
    await wait_for_gate(h, "plan")
    await h.execute_update(ResearchWorkflow.decide, GateDecision(gate="plan", decision="reject", reviewer="ann"))
    await h.result()
    await save("plan-rejected", h)

    h = await start_run(client, worker, ResearchRequest(question="How do circuit breakers recover?",
                                                        max_revision_rounds=2, **req), f"research-{TAG}-revise")
    await wait_for_gate(h, "plan")
    await h.execute_update(ResearchWorkflow.decide, GateDecision(gate="plan", decision="approve", reviewer="ann"))
    await wait_for_gate(h, "report")
    await h.execute_update(ResearchWorkflow.decide, GateDecision(
        gate="report", decision="request_changes", reviewer="ann", comment="add numbers"))
    await wait_for_gate(h, "report")
    await h.execute_update(ResearchWorkflow.decide, GateDecision(gate="report", decision="approve", reviewer="ann"))
    await h.result()
    await save("revision-rounds", h)

    # crash-recovered: a worker process is SIGKILLed mid-run, a new worker finishes the run
    prefix = f"crash{uuid.uuid4().hex[:6]}"
    child_env = {**os.environ, "DEEPSCI_TEMPORAL_ADDRESS": client.service_client.config.target_host,
                 "DATABASE_URL": settings.dsn, "DEEPSCI_HOME": str(settings.home_dir),
                 "DEEPSCI_QDRANT_PATH": str(settings.home_dir / "qdrant-crash"),
                 "DEEPSCI_TASK_QUEUE_PREFIX": prefix}
    proc = subprocess.Popen([sys.executable, "-m", "workers.main"], env=child_env)
    h = await start_run(client, prefix, ResearchRequest(question="How do idempotency keys stop duplicates?",
                                                        auto_approve=True, **req), f"research-{TAG}-crash")
    for _ in range(600):
        p = await h.query(ResearchWorkflow.progress)
        if p.stage in ("investigating", "drafting"):
            break
        await asyncio.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    async with running(build_workers(client, deps, prefix)):
        await h.result()
    await save("crash-recovered", h)

    # budget-exhausted: offline, stopped after the plan, nobody raises it, the partial report is kept
    h = await start_run(client, worker, ResearchRequest(question="What is a retry budget?", auto_approve=True,
                                                        max_llm_calls=1, budget_wait_s=1, **req),
                        f"research-{TAG}-budget")
    assert (await h.result()).status == "budget_exhausted"
    await save("budget-exhausted", h)

    # model-budget-quota: model mode on the fake OpenAI server; a quota error parks the run, then
    # max_llm_calls stops it, `raise_budget` resumes it, both gates decided by Update
    from deepsci.contracts import BudgetRaise
    from tests.fakes.openai_server import FakeOpenAI
    from tests.helpers import model_workers, wait_progress

    with FakeOpenAI(faults=["insufficient_quota"]) as fake:
        async with model_workers(env, deps, fake) as mprefix:
            h = await start_run(client, mprefix, ResearchRequest(
                question="How does full jitter spread retries?", quota_park_s=1, max_llm_calls=2,
                allowed_reviewers=["ann"], **req), f"research-{TAG}-model")
            await wait_for_gate(h, "plan")
            await h.execute_update(ResearchWorkflow.decide, GateDecision(gate="plan", decision="approve",
                                                                         reviewer="ann"))
            await wait_progress(h, lambda p: p.budget_stop is not None)
            await h.execute_update(ResearchWorkflow.raise_budget, BudgetRaise(max_llm_calls=40, reviewer="ann"))
            await wait_for_gate(h, "report")
            await h.execute_update(ResearchWorkflow.decide, GateDecision(gate="report", decision="approve",
                                                                         reviewer="ann"))
            assert (await h.result()).status == "published"
    await save("model-budget-quota", h)
