"""A run's model budget: usage totals, the budget stop (with its partial report and `raise_budget`),
and parking on a provider quota error. Workflow code; its state is one dataclass, ``Budget``, held
by ``ResearchWorkflow``, whose ``raise_budget`` Update handler delegates here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.writing import WritingActivities
    from deepsci.contracts import (
        AggregateInput,
        BudgetRaise,
        BudgetState,
        DraftRef,
        LlmUsage,
        ReportRef,
        ResearchRequest,
        SourceRecord,
        SubQuestion,
    )
    from deepsci.errors import ErrorType
    from workflows import search_attributes as sa
    from workflows.calls import call

__all__ = ["Budget", "BudgetHost", "BudgetStop", "PATCH_LLM_ACCOUNTING"]

T = TypeVar("T")

# Model calls report tokens and cost; the run keeps totals, checks its budget before each call,
# parks on provider quota errors and sets the cost search attributes.
PATCH_LLM_ACCOUNTING = "llm-accounting"


class BudgetStop(Exception):
    """A budget stop was not lifted in time; the run turns it into a budget_exhausted result."""


class BudgetHost(Protocol):
    """What the budget needs from its run: the request, the stage, and what the partial report shows."""

    request: ResearchRequest | None
    stage: str
    plan: list[SubQuestion]
    drafts: dict[str, DraftRef]
    sources: dict[str, SourceRecord]

    def set_stage(self, stage: str) -> None: ...


@dataclass
class Budget:
    run: BudgetHost = field(repr=False)
    accounting: bool = False  # PATCH_LLM_ACCOUNTING, decided at the start of the run
    budget_usd: float | None = None
    max_llm_calls: int | None = None
    usage: LlmUsage = field(default_factory=LlmUsage)
    calls: int = 0  # model steps started (a quota failure is not billed, so not counted)
    done: int = 0  # model steps finished
    inflight: int = 0
    citations_dropped: int = 0
    claims_unsupported: int = 0  # from DraftRef; 0 in histories from before the claim check
    stop: str | None = None  # why the run is stopped by its budget
    stop_deadline: datetime | None = None
    partial: ReportRef | None = None  # the report saved when the budget stopped the run
    parks: int = 0
    parked_until: datetime | None = None

    # ------------------------------------------------------------------ raise_budget: validator, update

    def state(self, message: str = "") -> BudgetState:
        return BudgetState(budget_usd=self.budget_usd, max_llm_calls=self.max_llm_calls,
                           cost_usd=self.usage.cost_usd, llm_calls=self.calls,
                           stopped=self.stop is not None, message=message)

    def validate_raise(self, r: BudgetRaise) -> None:
        req = self.run.request
        if r.budget_usd is None and r.max_llm_calls is None:
            raise ValueError("give a new budget_usd and/or max_llm_calls")
        if req and req.allowed_reviewers and r.reviewer not in req.allowed_reviewers:
            raise ValueError(f"reviewer {r.reviewer!r} may not change this run's budget")
        if r.budget_usd is not None and r.budget_usd <= self.usage.cost_usd:
            raise ValueError(f"a budget of ${r.budget_usd:g} is not above what the run has spent "
                             f"(${self.usage.cost_usd:.6f})")
        if r.max_llm_calls is not None and r.max_llm_calls <= self.calls:
            raise ValueError(f"max_llm_calls {r.max_llm_calls} is not above the calls already made "
                             f"({self.calls})")

    def raise_(self, r: BudgetRaise) -> BudgetState:
        if r.budget_usd is not None:
            self.budget_usd = r.budget_usd
        if r.max_llm_calls is not None:
            self.max_llm_calls = r.max_llm_calls
        workflow.logger.info("budget raised by %s: $%s, %s calls", r.reviewer, self.budget_usd,
                             self.max_llm_calls)
        return self.state(f"budget raised by {r.reviewer}")

    # ------------------------------------------------------------------ one model step

    async def step(self, req: ResearchRequest, start: Callable[[], Awaitable[T]]) -> T:
        """One model step (plan, draft, critique, aggregate): budget check, usage totals, and
        parking on a provider quota error. Runs from before PATCH_LLM_ACCOUNTING just count."""
        if not self.accounting:
            self.calls += 1
            return await start()
        while True:
            await self._within_budget(req)
            self.calls += 1
            try:
                out = await self._in_flight(start)
            except ActivityError as err:
                cause = err.cause
                if not (isinstance(cause, ApplicationError) and cause.type == ErrorType.LLM_QUOTA_EXHAUSTED):
                    raise
                self.calls -= 1  # nothing was billed
                if self.parks >= req.quota_max_parks:
                    raise
                await self._park(req, cause.message)
                continue
            self.done += 1
            self.usage = self.usage.plus(out.usage)  # type: ignore[attr-defined]
            self.citations_dropped += getattr(out, "citations_dropped", 0)
            self.claims_unsupported += getattr(out, "claims_unsupported", 0)
            workflow.upsert_search_attributes([sa.COST_USD.value_set(self.usage.cost_usd),
                                               sa.LLM_CALLS.value_set(self.calls)])
            return out

    async def _in_flight(self, start: Callable[[], Awaitable[T]]) -> T:
        """Counts the step as in flight until it ends, however it ends (failed, cancelled)."""
        self.inflight += 1
        try:
            return await start()
        finally:
            self.inflight -= 1

    def _may_go_on(self, first: bool) -> bool:
        """The budget allows the next call; other waiters also wake when the first one lifts the stop."""
        return self._over_budget() is None or (not first and self.stop is None)

    def _over_budget(self) -> str | None:
        """Why the next model call may not start, or None. The next call is assumed to cost what
        an average call so far cost, and calls already in flight are counted the same way."""
        if self.max_llm_calls is not None and self.calls >= self.max_llm_calls:
            return f"max_llm_calls {self.max_llm_calls} reached"
        if self.budget_usd is not None and self.done:
            per_call = self.usage.cost_usd / self.done
            projected = self.usage.cost_usd + per_call * (self.inflight + 1)
            if projected > self.budget_usd:
                return (f"budget ${self.budget_usd:g} would be exceeded (spent ${self.usage.cost_usd:.6f}, "
                        f"next call ~${per_call:.6f})")
        return None

    async def _within_budget(self, req: ResearchRequest) -> None:
        """Wait here while the budget forbids the next call: the first waiter saves the partial
        report; a `raise_budget` lifts the stop; at budget_wait_s the run ends (``BudgetStop``)."""
        while (reason := self._over_budget()) is not None:
            first = self.stop is None
            if first:
                self.stop = reason
                self.stop_deadline = workflow.now() + timedelta(seconds=req.budget_wait_s)
                resume = self.run.stage
                self.run.set_stage("budget-exhausted")
                workflow.logger.warning("stopped by budget: %s", reason)
                self.partial = await self._aggregate_partial(req)
            try:
                # Other waiters also wake when the first one lifts the stop, and check again.
                # Set by the first waiter; `or now` only satisfies the type checker.
                until = self.stop_deadline or workflow.now()
                await workflow.wait_condition(partial(self._may_go_on, first), timeout=until - workflow.now())
            except TimeoutError:
                raise BudgetStop(self.stop or reason) from None
            if first:
                self.stop = None
                self.stop_deadline = None
                self.run.set_stage(resume)

    async def _park(self, req: ResearchRequest, why: str) -> None:
        """A quota error will not clear by retrying in seconds: wait on a durable timer, then retry."""
        self.parks += 1
        resume = self.run.stage
        self.parked_until = workflow.now() + timedelta(seconds=req.quota_park_s)
        self.run.set_stage("parked-quota")
        workflow.logger.warning("provider quota exhausted (%s); parked %d/%d for %gs", why, self.parks,
                                req.quota_max_parks, req.quota_park_s)
        await workflow.sleep(timedelta(seconds=req.quota_park_s))
        self.parked_until = None
        if self.run.stage == "parked-quota":
            self.run.set_stage(resume)

    async def _aggregate_partial(self, req: ResearchRequest) -> ReportRef:
        """The report of what is drafted so far, rendered without a model call."""
        wid = workflow.info().workflow_id
        drafts = [self.run.drafts[sq.id] for sq in self.run.plan if sq.id in self.run.drafts]
        return await call(WritingActivities.aggregate, AggregateInput(
            idempotency_key=f"{wid}/aggregate/partial/{self.calls}", workflow_id=wid, question=req.question,
            drafts=drafts, sources=list(self.run.sources.values()), partial=True))
