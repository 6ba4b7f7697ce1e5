"""A Reset (as from the Web UI) to a point after the plan gate: the new run completes and the
report is published exactly once, because every key is built from the workflow id."""

from __future__ import annotations

import uuid

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest

from deepsci.contracts import ResearchRequest
from tests.helpers import CORPUS, start_run


async def test_reset_after_plan_gate_publishes_once(env, worker, deps):
    req = ResearchRequest(question="Why add jitter to exponential backoff?", corpus=str(CORPUS),
                          auto_approve=True, max_sub_questions=2)
    handle = await start_run(env.client, worker, req)
    first = await handle.result()
    assert first.status == "published"

    events = [e async for e in handle.fetch_history_events()]
    first_child = next(e.event_id for e in events
                       if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED)
    reset_point = max(e.event_id for e in events
                      if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and e.event_id < first_child)
    resp = await env.client.workflow_service.reset_workflow_execution(ResetWorkflowExecutionRequest(
        namespace=env.client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=handle.id, run_id=handle.result_run_id),
        reason="test: reset after the plan gate", workflow_task_finish_event_id=reset_point,
        request_id=str(uuid.uuid4()),
    ))
    assert resp.run_id and resp.run_id != handle.result_run_id
    second = await env.client.get_workflow_handle(handle.id, run_id=resp.run_id,
                                                  result_type=type(first)).result()
    assert second.status == "published"
    assert second.report_path == first.report_path
    assert deps.store.ledger_count(f"{handle.id}/publish") == 1
    assert deps.store.get_report(handle.id) is not None

