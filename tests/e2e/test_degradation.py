"""Every model step degrades instead of failing the run: a weak model that breaks the plan, the drafts,
the critique or the summary still gets a published report, which says what degraded and why
(real dev server, real Postgres, the real openai client against the fake's weak-model knobs)."""

from __future__ import annotations

import asyncio

from deepsci.contracts import ResearchRequest
from tests.fakes.openai_server import FakeOpenAI
from tests.helpers import CORPUS, model_workers, start_run

QUESTION = "How should retries use exponential backoff and jitter?"


def _req(**kw) -> ResearchRequest:
    kw = {"question": QUESTION, "max_sub_questions": 2, "auto_approve": True, "max_revision_rounds": 1, **kw}
    return ResearchRequest(corpus=str(CORPUS), **kw)


async def test_a_broken_critique_and_summary_still_publish_the_drafted_report(env, deps):
    with FakeOpenAI(runaway=True, wrong_ids=True, broken={"CritiqueOut", "AggregateOut"}) as fake:
        async with model_workers(env, deps, fake) as prefix:
            result = await (await start_run(env.client, prefix, _req())).result()
    assert result.status == "published"
    assert {d.step for d in result.degraded} == {"critique", "aggregate"}
    assert all("SchemaViolation" in d.reason for d in result.degraded)
    assert result.citations  # drafts with ids written "1", "[E3]", ... kept their citations
    report = deps.store.get_report(result.workflow_id)["markdown"]
    assert "## What degraded" in report and "rendered without a model summary" in report
    assert result.mode == "model:fake-strong"


async def test_a_failed_plan_and_failed_drafts_publish_a_report_that_says_so(env, deps):
    with FakeOpenAI(broken={"PlanOut"}, cut_off={"DraftOut"}) as fake:
        async with model_workers(env, deps, fake) as prefix:
            result = await (await start_run(env.client, prefix, _req())).result()
    assert result.status == "published"
    steps = [(d.step, d.sub_question_id) for d in result.degraded]
    assert ("plan", "") in steps and ("draft", "sq1") in steps
    report = deps.store.get_report(result.workflow_id)["markdown"]
    # the question itself became the one sub-question ("Overview"), and its section says why it is empty
    assert "## 1. Overview\n\n> No supported answer: drafting this section failed" in report
    assert "## 2." not in report and "cut off" in report
    assert not result.citations


async def test_weak_model_faults_at_30_percent_still_publish_every_run(env, deps):
    with FakeOpenAI(error_rate=0.3, error_kinds=["malformed", "wrong_schema", "length", "500"], seed=11,
                    runaway=True, wrong_ids=True) as fake:
        async with model_workers(env, deps, fake, llm_timeout_s=2.0) as prefix:
            handles = [await start_run(env.client, prefix, _req(question=f"{QUESTION} ({i})"))
                       for i in range(3)]
            results = await asyncio.gather(*(h.result() for h in handles))
    assert [r.status for r in results] == ["published"] * 3
    statuses = [c.status for c in fake.chat_calls()]
    assert statuses.count(500) >= 1 and len(statuses) > len(results) * 5  # faults were injected
