"""Plan and report gates through the `decide` Update, its validator, the Signal path and the query."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateFailedError

from deepsci.contracts import GateDecision, ResearchRequest
from tests.conftest import CORPUS
from tests.helpers import start_run, wait_for_gate
from workflows.research import ResearchWorkflow

QUESTION = "How should retries use exponential backoff and jitter?"


def _req(**kw) -> ResearchRequest:
    return ResearchRequest(question=QUESTION, corpus=str(CORPUS), max_sub_questions=2, **kw)


async def test_plan_and_report_approved_by_update(env, worker):
    handle = await start_run(env.client, worker, _req())
    p = await wait_for_gate(handle, "plan")
    assert p.plan and p.stage == "awaiting-plan-approval" and p.gate_deadline is not None

    # the report gate is not open yet: the validator refuses, and says why
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(ResearchWorkflow.decide,
                                    GateDecision(gate="report", decision="approve", reviewer="ann"))
    assert "gate 'report' is not open" in str(refused.value.cause)

    out = await handle.execute_update(ResearchWorkflow.decide,
                                      GateDecision(gate="plan", decision="approve", reviewer="ann"))
    assert out.accepted and out.reviewer == "ann"
    # the same decision sent twice returns the first outcome instead of an error
    again = await handle.execute_update(ResearchWorkflow.decide,
                                        GateDecision(gate="plan", decision="approve", reviewer="ann"))
    assert again == out

    await wait_for_gate(handle, "report")
    await handle.execute_update(ResearchWorkflow.decide,
                                GateDecision(gate="report", decision="approve", reviewer="bob"))
    result = await handle.result()
    assert result.status == "published"
    assert [(d.gate, d.decision, d.reviewer) for d in result.decisions] == [
        ("plan", "approve", "ann"), ("report", "approve", "bob")]


async def test_plan_rejection_ends_the_run(env, worker, deps):
    handle = await start_run(env.client, worker, _req())
    await wait_for_gate(handle, "plan")
    await handle.execute_update(ResearchWorkflow.decide,
                                GateDecision(gate="plan", decision="reject", reviewer="ann",
                                             comment="too broad"))
    result = await handle.result()
    assert result.status == "rejected"
    assert "plan rejected by ann: too broad" in result.message
    assert result.sources == [] and result.report_path is None
    assert deps.store.get_report(result.workflow_id) is None


async def test_signal_path_and_edited_plan(env, worker):
    handle = await start_run(env.client, worker, _req())
    await wait_for_gate(handle, "plan")
    # an invalid signal is dropped (logged), it does not move the run
    await handle.signal(ResearchWorkflow.decide_signal,
                        GateDecision(gate="report", decision="approve", reviewer="ann"))
    edited = ["What is full jitter?", "How many retry attempts are recommended?"]
    await handle.signal(ResearchWorkflow.decide_signal,
                        GateDecision(gate="plan", decision="approve", reviewer="ann", plan=edited))
    await wait_for_gate(handle, "report")
    p = await handle.query(ResearchWorkflow.progress)
    assert p.plan == edited
    assert p.sub_questions_done == 2
    await handle.signal(ResearchWorkflow.decide_signal,
                        GateDecision(gate="report", decision="approve", reviewer="ann"))
    result = await handle.result()
    assert result.status == "published"
    assert "What is full jitter?" in open(result.report_path).read()


async def test_reviewer_not_allowed_is_refused(env, worker):
    handle = await start_run(env.client, worker, _req(allowed_reviewers=["ann"]))
    await wait_for_gate(handle, "plan")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(ResearchWorkflow.decide,
                                    GateDecision(gate="plan", decision="approve", reviewer="mallory"))
    assert "may not decide" in str(refused.value.cause)
    await handle.execute_update(ResearchWorkflow.decide,
                                GateDecision(gate="plan", decision="reject", reviewer="ann"))
    assert (await handle.result()).status == "rejected"


async def test_request_changes_runs_another_round(env, worker):
    handle = await start_run(env.client, worker, _req(max_revision_rounds=0))
    await wait_for_gate(handle, "plan")
    await handle.execute_update(ResearchWorkflow.decide,
                                GateDecision(gate="plan", decision="approve", reviewer="ann"))
    await wait_for_gate(handle, "report")
    await handle.execute_update(ResearchWorkflow.decide,
                                GateDecision(gate="report", decision="request_changes", reviewer="ann",
                                             comment="say more about thundering herds"))
    await wait_for_gate(handle, "report")
    p = await handle.query(ResearchWorkflow.progress)
    assert [d.decision for d in p.decisions] == ["approve", "request_changes"]
    await handle.execute_update(ResearchWorkflow.decide,
                                GateDecision(gate="report", decision="approve", reviewer="ann"))
    assert (await handle.result()).status == "published"
