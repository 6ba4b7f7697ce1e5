"""Model mode end to end: the pipeline with an OpenAI-compatible server (the loopback fake, the real
openai client, the real dev server and Postgres): reports with checked citations, cost totals equal
to what the provider billed, error injection, fail-fast auth errors, budgets and quota parking."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError

from deepsci.contracts import BudgetRaise, ResearchRequest
from deepsci.text import quote_in
from tests.fakes.openai_server import HALLUCINATED_QUOTE, HOSTILE_CLAIM, FakeOpenAI
from tests.helpers import CORPUS, model_workers, start_run, wait_progress
from tests.helpers import MODEL_PRICES as PRICES
from workflows import search_attributes as sa
from workflows.research import ResearchWorkflow

QUESTION = "How should retries use exponential backoff and jitter?"


def _req(**kw) -> ResearchRequest:
    kw = {"max_sub_questions": 2, "auto_approve": True, **kw}
    return ResearchRequest(question=QUESTION, corpus=str(CORPUS), **kw)


def assert_citations_check_out(deps, result) -> None:
    docs = deps.store.get_documents(sorted({s.content_hash for s in result.sources if s.content_hash}))
    by_id = {h[:16]: d["text"] for h, d in docs.items()}
    assert result.citations
    for c in result.citations:
        assert quote_in(c.quote, by_id[c.source_id]), c


async def test_full_run_in_model_mode_bills_what_the_provider_billed(env, deps):
    with FakeOpenAI() as fake:
        async with model_workers(env, deps, fake) as prefix:
            handle = await start_run(env.client, prefix, _req())
            result = await handle.result()
            desc = await handle.describe()
    assert result.status == "published" and result.mode == "model:fake-strong"
    assert_citations_check_out(deps, result)
    billed = fake.billed_totals()
    assert (result.stats.tokens_in, result.stats.tokens_out) == (billed.tokens_in, billed.tokens_out) != (0, 0)
    assert result.stats.cost_usd == pytest.approx(fake.billed_cost(PRICES), abs=1e-9)
    assert result.stats.citations_dropped == 0
    # routing: the cheap model plans and critiques, the strong one drafts and aggregates
    used = {(c.schema, c.model) for c in fake.chat_calls(200)}
    assert ("PlanOut", "fake-cheap") in used and ("CritiqueOut", "fake-cheap") in used
    assert ("DraftOut", "fake-strong") in used and ("AggregateOut", "fake-strong") in used
    # totals in the Web UI's search attributes
    assert desc.typed_search_attributes.get(sa.COST_USD) == pytest.approx(result.stats.cost_usd)
    assert desc.typed_search_attributes.get(sa.LLM_CALLS) == result.stats.llm_calls
    report = deps.store.get_report(result.workflow_id)
    assert "Mode: model:fake-strong" in report["markdown"]
    # the summary cites numbers that exist
    assert "## Summary" in report["markdown"] and "[1]" in report["markdown"].split("## Summary")[1]
    # fetched text reached the model fenced, with the data-not-instructions rule
    draft_prompt = next(u for schema, u in fake.prompts if schema == "DraftOut")
    assert "<<<UNTRUSTED-" in draft_prompt


async def test_error_injection_at_30_percent_still_completes_every_run(env, deps):
    with FakeOpenAI(error_rate=0.3, error_kinds=["429", "500", "slow", "malformed"], seed=7,
                    retry_after="1", slow_s=4.0) as fake:
        async with model_workers(env, deps, fake, llm_timeout_s=2.0) as prefix:
            handles = [await start_run(env.client, prefix, _req(max_revision_rounds=0)) for _ in range(3)]
            try:
                results = await asyncio.gather(*(h.result() for h in handles))
            except Exception:
                print("fake OpenAI calls (schema, status):", [(c.schema, c.status) for c in fake.chat_calls()])
                raise
    assert [r.status for r in results] == ["published"] * 3
    statuses = [c.status for c in fake.chat_calls()]
    assert statuses.count(429) + statuses.count(500) + statuses.count(499) >= 2  # faults were injected
    billed = fake.billed_totals()
    assert sum(r.stats.tokens_in for r in results) == billed.tokens_in
    assert sum(r.stats.tokens_out for r in results) == billed.tokens_out
    assert sum(r.stats.cost_usd for r in results) == pytest.approx(fake.billed_cost(PRICES), abs=1e-9)
    for r in results:
        assert_citations_check_out(deps, r)


async def test_a_rejected_api_key_fails_fast_in_one_attempt(env, deps):
    with FakeOpenAI(api_key="sk-the-right-one") as fake:
        async with model_workers(env, deps, fake) as prefix:
            handle = await start_run(env.client, prefix, _req())
            with pytest.raises(WorkflowFailureError) as failed:
                await handle.result()
    chain, cause = [], failed.value.cause
    while cause is not None:
        chain.append(cause)
        cause = getattr(cause, "cause", None)
    auth = [c for c in chain if getattr(c, "type", None) == "LlmAuthError"]
    assert auth and "OPENAI_API_KEY" in auth[0].message and "401" in auth[0].message
    assert len(fake.chat_calls()) == 1


async def test_a_hallucinated_citation_is_dropped_counted_and_critiqued(env, deps):
    with FakeOpenAI(hallucinate=True) as fake:
        async with model_workers(env, deps, fake) as prefix:
            result = await (await start_run(env.client, prefix, _req())).result()
    assert result.status == "published"
    assert result.stats.citations_dropped >= 2  # one per drafted section at least
    assert all(HALLUCINATED_QUOTE not in c.quote for c in result.citations)
    assert_citations_check_out(deps, result)
    critiques = [u for schema, u in fake.prompts if schema == "CritiqueOut"]
    assert critiques and 'dropped_citations="1"' in critiques[0]


async def test_a_claim_its_real_quote_does_not_support_is_dropped_and_counted(env, deps):
    # A model that obeyed a hostile document: its claim cites a real sentence, verbatim, that says
    # nothing of the kind. The quote check passes it; the claim check must not.
    with FakeOpenAI(hostile_claim=True) as fake:
        async with model_workers(env, deps, fake) as prefix:
            result = await (await start_run(env.client, prefix, _req(max_revision_rounds=0))).result()
    assert result.status == "published"
    drafted = sum(1 for schema, u in fake.prompts if schema == "DraftOut" and "<<<UNTRUSTED-" in u)
    assert result.stats.claims_unsupported == drafted >= 1  # one planted claim per drafted section
    assert result.stats.citations_dropped == 0  # its quote was real
    assert all(HOSTILE_CLAIM not in (c.claim or c.quote) for c in result.citations)
    # the model's supported claims ("The source states that ..." + the quote's words) are kept
    assert result.citations and all(c.claim.startswith("The source states that") for c in result.citations)
    assert_citations_check_out(deps, result)
    report = deps.store.get_report(result.workflow_id)["markdown"]
    assert HOSTILE_CLAIM not in report
    assert f"{drafted} drafted claim{'s' if drafted > 1 else ''} left out" in report


async def test_a_tiny_budget_stops_cleanly_and_raise_budget_resumes(env, deps):
    with FakeOpenAI() as fake:
        async with model_workers(env, deps, fake) as prefix:
            handle = await start_run(env.client, prefix, _req(budget_usd=1e-6, allowed_reviewers=["ann"]))
            p = await wait_progress(handle, lambda p: p.budget_stop is not None)
            assert p.stage == "budget-exhausted" and "budget $1e-06 would be exceeded" in p.budget_stop
            assert p.cost_usd > 1e-6 and p.llm_calls == 1  # the plan ran; nothing more was scheduled
            calls_at_stop = len(fake.chat_calls())
            await asyncio.sleep(1.0)
            assert len(fake.chat_calls()) == calls_at_stop  # stopped means no model calls
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(ResearchWorkflow.raise_budget, BudgetRaise(budget_usd=5e-7, reviewer="ann"))
            assert "not above what the run has spent" in str(refused.value.cause)
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(ResearchWorkflow.raise_budget, BudgetRaise(budget_usd=10, reviewer="eve"))
            assert "may not change this run's budget" in str(refused.value.cause)
            state = await handle.execute_update(ResearchWorkflow.raise_budget,
                                                BudgetRaise(budget_usd=10.0, reviewer="ann"))
            assert state.budget_usd == 10.0
            result = await handle.result()
    assert result.status == "published"
    assert result.stats.cost_usd == pytest.approx(fake.billed_cost(PRICES), abs=1e-9)
    # the partial report was kept when the run stopped
    partial = deps.store.get_artifact(f"{handle.id}/aggregate/partial/1")
    assert partial["partial"] and "Partial report" in partial["markdown"]


async def test_a_budget_nobody_raises_ends_the_run_with_its_partial_report(env, deps):
    with FakeOpenAI() as fake:
        async with model_workers(env, deps, fake) as prefix:
            result = await (await start_run(env.client, prefix, _req(max_llm_calls=3, budget_wait_s=2))).result()
    assert result.status == "budget_exhausted"
    assert "max_llm_calls 3 reached" in result.message and result.stats.llm_calls == 3
    assert len(fake.chat_calls(200)) == 3
    body = deps.store.get_artifact(result.report_key)
    assert body["partial"] and "Partial report" in body["markdown"]


async def test_a_quota_error_parks_the_run_then_it_goes_on(env, deps):
    with FakeOpenAI(faults=["insufficient_quota"]) as fake:
        async with model_workers(env, deps, fake) as prefix:
            handle = await start_run(env.client, prefix, _req(quota_park_s=3))
            parked = await wait_progress(handle, lambda p: p.stage == "parked-quota", timeout_s=30)
            assert parked.parked_until is not None
            result = await handle.result()
    assert result.status == "published"
    assert [c.status for c in fake.chat_calls()][:2] == [429, 200]
