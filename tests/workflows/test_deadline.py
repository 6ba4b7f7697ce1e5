"""Gate deadlines on the time-skipping test server: a day passes in milliseconds."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.publishing import PublishActivities
from activities.sources import SourceActivities
from deepsci.contracts import GateDecision, NotifyInput, NotifyResult, ResearchRequest
from starter.replay import replay_histories
from tests.helpers import CORPUS, running
from workers.main import build_workers
from workflows.gates import MAX_REMINDERS_PER_GATE
from workflows.research import ResearchWorkflow


@pytest.mark.parametrize("policy,status", [("reject", "rejected"), ("approve", "published")])
async def test_gate_deadline_applies_the_request_policy(skipping_env, deps, policy, status):
    prefix = f"ts{uuid.uuid4().hex[:8]}"
    async with running(build_workers(skipping_env.client, deps, prefix)):
        req = ResearchRequest(question="What is full jitter in retry backoff?", corpus=str(CORPUS),
                              max_sub_questions=1, gate_deadline_s=3 * 24 * 3600,
                              deadline_policy=policy)
        result = await skipping_env.client.execute_workflow(
            ResearchWorkflow.run, req, id=f"research-deadline-{policy}-{prefix}",
            task_queue=f"{prefix}-workflows")
    assert result.status == status
    assert result.decisions[0].reviewer == "deadline" and result.decisions[0].by_deadline
    assert result.decisions[0].decision == policy


class _Workers:
    """Workers for one test on the time-skipping server, on a fresh task-queue prefix."""

    def __init__(self, env: WorkflowEnvironment, deps):
        self.prefix = f"ts{uuid.uuid4().hex[:8]}"
        self._running = running(build_workers(env.client, deps, self.prefix))

    async def __aenter__(self) -> str:
        await self._running.__aenter__()
        return self.prefix

    async def __aexit__(self, *exc) -> None:
        await self._running.__aexit__(*exc)


HOUR = 3600.0


def _req(**kw) -> ResearchRequest:
    return ResearchRequest(question="What is full jitter in retry backoff?", corpus=str(CORPUS),
                           max_sub_questions=1, **kw)


async def test_reminders_while_the_gate_waits_then_the_deadline_rejects(skipping_env, deps):
    async with _Workers(skipping_env, deps) as prefix:
        wid = f"research-remind-{prefix}"
        result = await skipping_env.client.execute_workflow(
            ResearchWorkflow.run, _req(gate_deadline_s=24 * HOUR, reminder_interval_s=6 * HOUR),
            id=wid, task_queue=f"{prefix}-workflows")
    assert result.status == "rejected"
    assert [(d.gate, d.decision, d.reviewer, d.by_deadline) for d in result.decisions] == [
        ("plan", "reject", "deadline", True)]
    # reminders at 6 h, 12 h and 18 h; none at the deadline itself, no escalation
    assert deps.store.ledger_count(f"{wid}/notify/plan/1/reminder/") == 3
    assert deps.store.ledger_count(f"{wid}/notify/plan/1/reminder/3") == 1
    # plus the gate message when it opened and its edit when the deadline closed it
    assert deps.store.ledger_count(f"{wid}/notify/") == 5
    assert deps.store.ledger_count(f"{wid}/notify/plan/1/opened") == 1
    decided = deps.store.ledger_get(f"{wid}/notify/plan/1/decided")
    assert decided["decision"]["reviewer"] == "deadline" and decided["decision"]["by_deadline"]
    assert 24 * HOUR <= result.stats.duration_s < 25 * HOUR


async def test_escalate_notifies_extends_once_then_rejects(skipping_env, deps):
    async with _Workers(skipping_env, deps) as prefix:
        wid = f"research-escalate-{prefix}"
        result = await skipping_env.client.execute_workflow(
            ResearchWorkflow.run,
            _req(gate_deadline_s=24 * HOUR, reminder_interval_s=10 * HOUR, deadline_policy="escalate",
                 escalation_reviewers=["carol", "dave"]),
            id=wid, task_queue=f"{prefix}-workflows")
        history = await skipping_env.client.get_workflow_handle(wid).fetch_history()
    assert result.status == "rejected"
    (d,) = result.decisions
    assert (d.gate, d.decision, d.reviewer, d.by_deadline) == ("plan", "reject", "deadline", True)
    assert "escalating to carol, dave" in d.comment
    assert deps.store.ledger_count(f"{wid}/notify/plan/1/escalation") == 1
    # reminders at 10 h and 20 h, escalation at 24 h, then at 34 h and 44 h; rejected at 48 h
    assert deps.store.ledger_count(f"{wid}/notify/plan/1/reminder/") == 4
    assert 48 * HOUR <= result.stats.duration_s < 49 * HOUR  # the deadline was extended once
    escalation = deps.store.once(f"{wid}/notify/plan/1/escalation", lambda: {})[0]
    assert escalation["recipients"] == ["carol", "dave"] and escalation["kind"] == "escalation"
    # the patched gate's history replays on the current code
    outcomes = await replay_histories([history])
    assert outcomes and all(o.ok for o in outcomes), outcomes


async def test_reminders_are_capped_per_gate(skipping_env, deps):
    async with _Workers(skipping_env, deps) as prefix:
        wid = f"research-remind-cap-{prefix}"
        result = await skipping_env.client.execute_workflow(
            ResearchWorkflow.run, _req(gate_deadline_s=24 * HOUR, reminder_interval_s=60),
            id=wid, task_queue=f"{prefix}-workflows")
    assert result.status == "rejected" and 24 * HOUR <= result.stats.duration_s < 25 * HOUR
    assert deps.store.ledger_count(f"{wid}/notify/plan/1/reminder/") == MAX_REMINDERS_PER_GATE


async def test_escalation_reviewer_decides_within_the_extension(skipping_env, deps):
    async with _Workers(skipping_env, deps) as prefix:
        wid = f"research-escalate-ok-{prefix}"
        handle = await skipping_env.client.start_workflow(
            ResearchWorkflow.run,
            _req(gate_deadline_s=24 * HOUR, reminder_interval_s=100 * HOUR, deadline_policy="escalate",
                 allowed_reviewers=["ann"], escalation_reviewers=["carol"], max_revision_rounds=0),
            id=wid, task_queue=f"{prefix}-workflows")
        p = None
        for _ in range(200):
            p = await handle.query(ResearchWorkflow.progress)
            if p.open_gate == "plan":
                break
            await asyncio.sleep(0.05)
        assert p.open_gate == "plan" and not p.escalated
        first_deadline = p.gate_deadline
        # carol may not decide before the escalation
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(ResearchWorkflow.decide,
                                        GateDecision(gate="plan", decision="approve", reviewer="carol"))
        assert "may not decide" in str(refused.value.cause)
        await skipping_env.sleep(timedelta(hours=25))
        for _ in range(200):
            p = await handle.query(ResearchWorkflow.progress)
            if p.escalated:
                break
            await asyncio.sleep(0.05)
        assert p.escalated and p.open_gate == "plan" and p.reminders_sent == 0
        assert p.gate_deadline - first_deadline == timedelta(hours=24)
        await handle.execute_update(ResearchWorkflow.decide,
                                    GateDecision(gate="plan", decision="approve", reviewer="carol",
                                                 version=p.gate_version))
        for _ in range(1200):  # the first investigation loads the embedding model (cold: ~30 s)
            p = await handle.query(ResearchWorkflow.progress)
            if p.open_gate == "report":
                break
            await asyncio.sleep(0.1)
        assert p.open_gate == "report" and not p.escalated and p.gate_version == 2
        await handle.execute_update(ResearchWorkflow.decide,
                                    GateDecision(gate="report", decision="approve", reviewer="ann"))
        result = await handle.result()
    assert result.status == "published"
    assert [(d.gate, d.decision, d.reviewer) for d in result.decisions] == [
        ("plan", "approve", "carol"), ("report", "approve", "ann")]
    assert deps.store.ledger_count(f"{wid}/notify/plan/1/escalation") == 1
    assert deps.store.ledger_count(f"{wid}/notify/report/2/reminder/") == 0
    assert deps.store.ledger_count(f"{wid}/notify/report/2/decided") == 1


async def test_a_decision_after_reminders_stops_them(skipping_env, deps):
    async with _Workers(skipping_env, deps) as prefix:
        wid = f"research-remind-ok-{prefix}"
        handle = await skipping_env.client.start_workflow(
            ResearchWorkflow.run, _req(gate_deadline_s=24 * HOUR, reminder_interval_s=4 * HOUR),
            id=wid, task_queue=f"{prefix}-workflows")
        for _ in range(200):
            if (await handle.query(ResearchWorkflow.progress)).open_gate == "plan":
                break
            await asyncio.sleep(0.05)
        await skipping_env.sleep(timedelta(hours=9))
        for _ in range(200):
            p = await handle.query(ResearchWorkflow.progress)
            if p.reminders_sent == 2:
                break
            await asyncio.sleep(0.05)
        assert p.reminders_sent == 2 and p.open_gate == "plan"
        await handle.execute_update(ResearchWorkflow.decide,
                                    GateDecision(gate="plan", decision="reject", reviewer="ann"))
        result = await handle.result()
    assert result.status == "rejected" and result.decisions[0].reviewer == "ann"
    assert deps.store.ledger_count(f"{wid}/notify/plan/1/reminder/") == 2


async def test_a_failing_notifier_never_fails_or_holds_up_the_run(skipping_env, deps):
    attempts: list[str] = []

    @activity.defn(name="notify")
    async def broken_notify(inp: NotifyInput) -> NotifyResult:
        attempts.append(inp.idempotency_key)
        raise RuntimeError("the chat service is down")

    prefix = f"ts{uuid.uuid4().hex[:8]}"
    workers = build_workers(skipping_env.client, deps, prefix, roles=("workflows", "llm", "cpu"))
    workers.append(Worker(skipping_env.client, task_queue=f"{prefix}-io",
                          activities=[SourceActivities(deps).search, PublishActivities(deps).publish,
                                      broken_notify],
                          activity_executor=ThreadPoolExecutor(max_workers=4)))
    wid = f"research-notify-down-{prefix}"
    async with running(workers):
        result = await skipping_env.client.execute_workflow(
            ResearchWorkflow.run,
            _req(gate_deadline_s=24 * HOUR, reminder_interval_s=6 * HOUR, deadline_policy="escalate",
                 escalation_reviewers=["carol"]),
            id=wid, task_queue=f"{prefix}-workflows")
    # every notification was retried and given up on, the deadline and its extension still held
    assert result.status == "rejected" and result.decisions[0].reviewer == "deadline"
    assert 48 * HOUR <= result.stats.duration_s < 49 * HOUR
    assert f"{wid}/notify/plan/1/escalation" in attempts
    assert len(attempts) > len(set(attempts)) >= 4
    assert deps.store.ledger_count(f"{wid}/notify/") == 0
