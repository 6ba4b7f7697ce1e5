"""Plan and report gates through the `decide` Update, its validator, the Signal path and the query."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowUpdateFailedError

from deepsci.contracts import GateDecision, ResearchRequest
from tests.helpers import CORPUS, start_run, wait_for_gate
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


async def test_edited_plan_by_update_is_what_the_run_investigates(env, worker):
    handle = await start_run(env.client, worker, _req())
    p = await wait_for_gate(handle, "plan")
    assert len(p.plan) == 2 and p.gate_version == 1 and p.gate_opened_at is not None
    edited = ["What is full jitter?", "What is decorrelated jitter?", "How many retry attempts are sane?"]
    out = await handle.execute_update(ResearchWorkflow.decide,
                                      GateDecision(gate="plan", decision="approve", reviewer="ann",
                                                   plan=[" ", *edited], version=1))
    assert out.accepted and out.version == 1
    p = await wait_for_gate(handle, "report")
    assert p.plan == edited and p.sub_questions_total == 3 and p.sub_questions_done == 3
    for i in (1, 2, 3):  # one investigation per edited sub-question, none for the original plan
        child = await env.client.get_workflow_handle(f"{handle.id}/investigate/sq{i}").describe()
        assert child.workflow_type == "InvestigateWorkflow"
    await handle.execute_update(ResearchWorkflow.decide,
                                GateDecision(gate="report", decision="approve", reviewer="ann"))
    result = await handle.result()
    report = open(result.report_path).read()
    assert result.status == "published" and all(q in report for q in edited)


async def test_decision_on_an_older_version_is_refused(env, worker):
    handle = await start_run(env.client, worker, _req(max_revision_rounds=0))
    await wait_for_gate(handle, "plan")
    await handle.execute_update(ResearchWorkflow.decide,
                                GateDecision(gate="plan", decision="approve", reviewer="ann", version=1))
    p = await wait_for_gate(handle, "report")
    assert p.gate_version == 2
    changes = GateDecision(gate="report", decision="request_changes", reviewer="ann",
                           comment="cover thundering herds", version=2)
    first = await handle.execute_update(ResearchWorkflow.decide, changes)
    for _ in range(600):  # the revised report opens the gate again, as version 3
        p = await handle.query(ResearchWorkflow.progress)
        if p.open_gate == "report" and p.gate_version == 3:
            break
        await asyncio.sleep(0.1)
    assert p.gate_version == 3 and p.open_gate == "report"
    # the same decision sent twice still gets the first outcome
    assert await handle.execute_update(ResearchWorkflow.decide, changes) == first
    # an approval of version 2 (what the reviewer saw before the revision) is refused, with the reason
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(ResearchWorkflow.decide,
                                    GateDecision(gate="report", decision="approve", reviewer="bob", version=2))
    assert "stale decision" in str(refused.value.cause) and "version 3 is shown" in str(refused.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(ResearchWorkflow.decide,
                                    GateDecision(gate="report", decision="approve", reviewer="bob", version=9))
    assert "unknown version 9" in str(refused.value.cause)
    # a stale signal is dropped, not applied
    await handle.signal(ResearchWorkflow.decide_signal,
                        GateDecision(gate="report", decision="reject", reviewer="bob", version=2))
    out = await handle.execute_update(ResearchWorkflow.decide,
                                      GateDecision(gate="report", decision="approve", reviewer="bob", version=3))
    assert out.accepted and out.version == 3
    result = await handle.result()
    assert result.status == "published"
    assert [(d.decision, d.reviewer) for d in result.decisions] == [
        ("approve", "ann"), ("request_changes", "ann"), ("approve", "bob")]
