"""`deepsci pending`: runs waiting on a gate, found by a visibility query on `DeepsciOpenGate`,
with how long each has waited (dev server; visibility is eventually consistent, so poll)."""

from __future__ import annotations

import asyncio
import json

from deepsci.contracts import GateDecision, ResearchRequest
from starter.cli.review import pending_runs
from tests.helpers import CORPUS, start_run, wait_for_gate
from tests.helpers import cli_env as _env
from tests.helpers import deepsci_cli as _deepsci
from workflows.research import ResearchWorkflow


def _req(**kw) -> ResearchRequest:
    return ResearchRequest(question="What is full jitter in retry backoff?", corpus=str(CORPUS),
                           max_sub_questions=1, max_revision_rounds=0, **kw)


async def _until(check, timeout_s: float = 20):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        value = await check()
        if value is not None or loop.time() > end:
            return value
        await asyncio.sleep(0.3)


async def test_pending_lists_runs_waiting_on_a_gate(env, worker, settings):
    queue = f"{worker}-workflows"
    at_plan = await start_run(env.client, worker, _req(gate_deadline_s=3600))
    at_report = await start_run(env.client, worker, _req(gate_deadline_s=7200))
    done = await start_run(env.client, worker, _req(auto_approve=True))
    await wait_for_gate(at_plan, "plan")
    await wait_for_gate(at_report, "plan")
    await at_report.execute_update(ResearchWorkflow.decide,
                                   GateDecision(gate="plan", decision="approve", reviewer="ann"))
    await wait_for_gate(at_report, "report")
    assert (await done.result()).status == "published"

    async def both():
        rows = {r["workflow_id"]: r for r in await pending_runs(env.client, task_queue=queue)}
        return rows if set(rows) == {at_plan.id, at_report.id} else None

    rows = await _until(both)
    assert rows, await pending_runs(env.client, task_queue=queue)
    p, r = rows[at_plan.id], rows[at_report.id]
    assert (p["gate"], p["gate_version"], r["gate"], r["gate_version"]) == ("plan", 1, "report", 2)
    for row, deadline in ((p, 3600), (r, 7200)):
        assert 0 <= row["waited_s"] < 120 and row["gate_opened_at"] is not None
        assert deadline - 120 < row["deadline_in_s"] <= deadline
        assert row["question"] == "What is full jitter in retry backoff?"

    # the CLI, as a user runs it: --json, the table, the --gate filter
    e = _env(env, settings, worker)
    code, out, err = await _deepsci(e, "pending", "--queue", queue, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["total"] == 2
    listed = {x["workflow_id"]: x for x in doc["runs"]}
    assert set(listed) == {at_plan.id, at_report.id}
    assert listed[at_report.id]["gate"] == "report" and listed[at_report.id]["waited_s"] >= 0
    code, out, err = await _deepsci(e, "pending", "--queue", queue, "--gate", "report")
    assert code == 0, err
    assert at_report.id in out and at_plan.id not in out and "2 waiting" not in out

    # a decision on an older version is refused by the CLI with the reason (exit 2)
    code, out, err = await _deepsci(e, "approve", at_report.id, "--gate", "report", "--version", "1",
                                    "--reviewer", "bob", "--json")
    assert code == 2, out + err
    assert json.loads(out.splitlines()[0])["accepted"] is False and "stale decision" in out

    # decided runs leave the list
    await at_plan.execute_update(ResearchWorkflow.decide,
                                 GateDecision(gate="plan", decision="reject", reviewer="ann", version=1))
    await at_report.execute_update(ResearchWorkflow.decide,
                                   GateDecision(gate="report", decision="reject", reviewer="ann", version=2))
    await at_plan.result()
    await at_report.result()

    async def empty():
        return [] if not await pending_runs(env.client, task_queue=queue) else None

    assert await _until(empty) == []
    code, out, _ = await _deepsci(e, "pending", "--queue", queue)
    assert code == 0 and "No run is waiting on a gate." in out
