"""ResearchWorkflow: plan, plan gate, investigate (child per sub-question), draft, critique/revise,
aggregate, report gate, publish. Orchestration only; every side effect is an activity."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.indexing import IndexActivities
    from activities.notify import NotifyActivities
    from activities.planning import PlanActivities
    from activities.publishing import PublishActivities
    from activities.writing import WritingActivities
    from deepsci.contracts import (
        AggregateInput,
        BudgetRaise,
        BudgetState,
        CritiqueInput,
        DecisionOutcome,
        DecisionRecord,
        DraftInput,
        DraftRef,
        EvidenceRef,
        GateDecision,
        GateName,
        InvestigateInput,
        InvestigateResult,
        LlmUsage,
        NotifyInput,
        PlanInput,
        Progress,
        PublishInput,
        ReportRef,
        ResearchRequest,
        ResearchResult,
        RetrieveInput,
        SourceRecord,
        Stats,
        SubQuestion,
    )
    from deepsci.policies import POLICIES
    from deepsci.queues import Queues
    from workflows import search_attributes as sa
    from workflows.investigate import InvestigateWorkflow

__all__ = ["ResearchWorkflow", "PATCH_GATE_REMINDERS", "PATCH_GATE_MESSAGES", "PATCH_LLM_ACCOUNTING"]

T = TypeVar("T")

# Gates wait in steps (a timer per reminder) and call `notify`; runs started before this patch
# keep their single deadline timer when replayed (docs/versioning.md).
PATCH_GATE_REMINDERS = "gate-reminders-escalation"
# Keeps a run's history bounded whatever reminder_interval_s says (two activities' worth of
# events per reminder); after this many, a gate waits quietly for its deadline.
MAX_REMINDERS_PER_GATE = 24
# Each gate posts a message when it opens and edits it when it closes (`notify` gate_opened /
# decided: the Slack message with buttons); before this patch gates only sent reminders.
PATCH_GATE_MESSAGES = "gate-messages"
# Model calls report tokens and cost; the run keeps totals, checks its budget before each call,
# parks on provider quota errors and sets the cost search attributes.
PATCH_LLM_ACCOUNTING = "llm-accounting"
# How long a finishing run waits for gate messages still being delivered.
NOTICE_DRAIN = timedelta(minutes=2)
# Activity failure type of a provider quota error (deepsci/llm/client.py): park, do not fail.
QUOTA_ERROR = "LlmQuotaExhausted"


class _BudgetStop(Exception):
    """Raised inside the run when a budget stop was not lifted in time; run() turns it into a result."""


@workflow.defn
class ResearchWorkflow:
    def __init__(self) -> None:
        self._stage = "starting"
        self._request: ResearchRequest | None = None
        self._plan: list[SubQuestion] = []
        self._open_gate: GateName | None = None
        self._gate_deadline = None
        self._pending: DecisionRecord | None = None
        self._decisions: list[DecisionRecord] = []
        self._outcomes: dict[tuple, DecisionOutcome] = {}
        self._done_sub_questions = 0
        self._sources: dict[str, SourceRecord] = {}
        self._chunks: dict[str, int] = {}
        self._llm_calls = 0
        self._round = 0
        self._gate_version = 0
        self._gate_opened_at = None
        self._reminders = 0
        self._escalated = False
        self._notices: list[asyncio.Future] = []
        self._messages = False  # PATCH_GATE_MESSAGES, decided once per run at its first gate
        self._accounting = False  # PATCH_LLM_ACCOUNTING, decided at the start of the run
        self._usage = LlmUsage()
        self._llm_done = 0
        self._llm_inflight = 0
        self._citations_dropped = 0
        self._budget_usd: float | None = None
        self._max_llm_calls: int | None = None
        self._budget_stop: str | None = None
        self._budget_deadline = None
        self._partial: ReportRef | None = None
        self._drafts: dict[str, DraftRef] = {}
        self._parks = 0
        self._parked_until = None

    # ------------------------------------------------------------------ gates: update, signal, query

    @staticmethod
    def _key(d: GateDecision) -> tuple:
        return (d.gate, d.decision, d.reviewer, d.comment, tuple(d.plan or ()), d.version)

    def _check(self, d: GateDecision) -> None:
        req = self._request
        if self._open_gate != d.gate:
            raise ValueError(f"gate {d.gate!r} is not open (open gate: {self._open_gate or 'none'})")
        if d.version is not None and d.version != self._gate_version:
            if d.version < self._gate_version:
                raise ValueError(f"stale decision: made against version {d.version} of the {d.gate}, "
                                 f"but version {self._gate_version} is shown now; review it and decide again")
            raise ValueError(f"unknown version {d.version} of the {d.gate} (the one shown is "
                             f"version {self._gate_version})")
        if req and req.allowed_reviewers:
            allowed = list(req.allowed_reviewers) + (list(req.escalation_reviewers) if self._escalated else [])
            if d.reviewer not in allowed:
                raise ValueError(f"reviewer {d.reviewer!r} may not decide on this run")
        if d.gate == "plan" and d.decision == "request_changes":
            raise ValueError("the plan gate takes approve (optionally with an edited plan) or reject")
        if d.plan is not None and (d.gate != "plan" or not [p for p in d.plan if p.strip()]):
            raise ValueError("an edited plan needs at least one sub-question, on the plan gate")

    @workflow.update
    def decide(self, d: GateDecision) -> DecisionOutcome:
        key = self._key(d)
        if key in self._outcomes:  # the same decision sent twice gets the first outcome
            return self._outcomes[key]
        self._pending = DecisionRecord(gate=d.gate, decision=d.decision, reviewer=d.reviewer,
                                       comment=d.comment, at=workflow.now())
        if d.plan is not None:
            self._plan = [SubQuestion(id=f"sq{i + 1}", text=t.strip())
                          for i, t in enumerate(p for p in d.plan if p.strip())]
        outcome = DecisionOutcome(gate=d.gate, decision=d.decision, reviewer=d.reviewer,
                                  accepted=True, message=f"{d.gate} {d.decision} by {d.reviewer}",
                                  version=self._gate_version)
        self._outcomes[key] = outcome
        return outcome

    @decide.validator
    def _validate_decide(self, d: GateDecision) -> None:
        if self._key(d) in self._outcomes:
            return
        self._check(d)

    @workflow.signal
    def decide_signal(self, d: GateDecision) -> None:
        """Fire-and-forget twin of `decide` for `temporal workflow signal` and the Web UI."""
        try:
            self._validate_decide(d)
        except ValueError as err:
            workflow.logger.warning("decision refused: %s", err)
            return
        self.decide(d)

    @workflow.query
    def progress(self) -> Progress:
        srcs = list(self._sources.values())
        return Progress(
            stage=self._stage,
            sub_questions_total=len(self._plan),
            sub_questions_done=self._done_sub_questions,
            sources_found=len(srcs),
            sources_parsed=sum(1 for s in srcs if s.status == "parsed"),
            sources_failed=sum(1 for s in srcs if s.status == "failed"),
            chunks_indexed=sum(self._chunks.values()),
            llm_calls=self._llm_calls,
            revision_round=self._round,
            open_gate=self._open_gate,
            gate_deadline=self._gate_deadline,
            plan=[s.text for s in self._plan],
            decisions=list(self._decisions),
            gate_version=self._gate_version,
            gate_opened_at=self._gate_opened_at,
            reminders_sent=self._reminders,
            escalated=self._escalated,
            tokens_in=self._usage.tokens_in,
            tokens_out=self._usage.tokens_out,
            cost_usd=self._usage.cost_usd,
            citations_dropped=self._citations_dropped,
            budget_usd=self._budget_usd,
            max_llm_calls=self._max_llm_calls,
            budget_stop=self._budget_stop,
            parked_until=self._parked_until,
        )

    # ------------------------------------------------------------------ budget: update, checks

    def _budget_state(self, message: str = "") -> BudgetState:
        return BudgetState(budget_usd=self._budget_usd, max_llm_calls=self._max_llm_calls,
                           cost_usd=self._usage.cost_usd, llm_calls=self._llm_calls,
                           stopped=self._budget_stop is not None, message=message)

    @workflow.update
    def raise_budget(self, r: BudgetRaise) -> BudgetState:
        if r.budget_usd is not None:
            self._budget_usd = r.budget_usd
        if r.max_llm_calls is not None:
            self._max_llm_calls = r.max_llm_calls
        workflow.logger.info("budget raised by %s: $%s, %s calls", r.reviewer, self._budget_usd,
                             self._max_llm_calls)
        return self._budget_state(f"budget raised by {r.reviewer}")

    @raise_budget.validator
    def _validate_raise_budget(self, r: BudgetRaise) -> None:
        req = self._request
        if r.budget_usd is None and r.max_llm_calls is None:
            raise ValueError("give a new budget_usd and/or max_llm_calls")
        if req and req.allowed_reviewers and r.reviewer not in req.allowed_reviewers:
            raise ValueError(f"reviewer {r.reviewer!r} may not change this run's budget")
        if r.budget_usd is not None and r.budget_usd <= self._usage.cost_usd:
            raise ValueError(f"a budget of ${r.budget_usd:g} is not above what the run has spent "
                             f"(${self._usage.cost_usd:.6f})")
        if r.max_llm_calls is not None and r.max_llm_calls <= self._llm_calls:
            raise ValueError(f"max_llm_calls {r.max_llm_calls} is not above the calls already made "
                             f"({self._llm_calls})")

    def _over_budget(self) -> str | None:
        """Why the next model call may not start, or None. The next call is assumed to cost what
        an average call so far cost, and calls already in flight are counted the same way."""
        if self._max_llm_calls is not None and self._llm_calls >= self._max_llm_calls:
            return f"max_llm_calls {self._max_llm_calls} reached"
        if self._budget_usd is not None and self._llm_done:
            per_call = self._usage.cost_usd / self._llm_done
            projected = self._usage.cost_usd + per_call * (self._llm_inflight + 1)
            if projected > self._budget_usd:
                return (f"budget ${self._budget_usd:g} would be exceeded (spent ${self._usage.cost_usd:.6f}, "
                        f"next call ~${per_call:.6f})")
        return None

    async def _within_budget(self, req: ResearchRequest) -> None:
        """Wait here while the budget forbids the next call: the first waiter saves the partial
        report; a `raise_budget` lifts the stop; at budget_wait_s the run ends (``_BudgetStop``)."""
        while (reason := self._over_budget()) is not None:
            first = self._budget_stop is None
            if first:
                self._budget_stop = reason
                self._budget_deadline = workflow.now() + timedelta(seconds=req.budget_wait_s)
                resume = self._stage
                self._set_stage("budget-exhausted")
                workflow.logger.warning("stopped by budget: %s", reason)
                self._partial = await self._aggregate_partial(req)
            try:
                # Other waiters also wake when the first one lifts the stop, and check again.
                await workflow.wait_condition(
                    lambda first=first: self._over_budget() is None or (not first and self._budget_stop is None),
                    timeout=self._budget_deadline - workflow.now())
            except TimeoutError:
                raise _BudgetStop(self._budget_stop or reason) from None
            if first:
                self._budget_stop = None
                self._budget_deadline = None
                self._set_stage(resume)

    async def _llm(self, req: ResearchRequest, call: Callable[[], Awaitable[T]]) -> T:
        """One model step (plan, draft, critique, aggregate): budget check, usage totals, and
        parking on a provider quota error. Runs from before PATCH_LLM_ACCOUNTING just count."""
        if not self._accounting:
            self._llm_calls += 1
            return await call()
        while True:
            await self._within_budget(req)
            self._llm_calls += 1
            self._llm_inflight += 1
            try:
                out = await call()
            except ActivityError as err:
                self._llm_inflight -= 1
                cause = err.cause
                if not (isinstance(cause, ApplicationError) and cause.type == QUOTA_ERROR):
                    raise
                self._llm_calls -= 1  # nothing was billed
                if self._parks >= req.quota_max_parks:
                    raise
                await self._park(req, cause.message)
                continue
            self._llm_inflight -= 1
            self._llm_done += 1
            self._usage = self._usage.plus(out.usage)
            self._citations_dropped += getattr(out, "citations_dropped", 0)
            workflow.upsert_search_attributes([sa.COST_USD.value_set(self._usage.cost_usd),
                                               sa.LLM_CALLS.value_set(self._llm_calls)])
            return out

    async def _park(self, req: ResearchRequest, why: str) -> None:
        """A quota error will not clear by retrying in seconds: wait on a durable timer, then retry."""
        self._parks += 1
        resume = self._stage
        self._parked_until = workflow.now() + timedelta(seconds=req.quota_park_s)
        self._set_stage("parked-quota")
        workflow.logger.warning("provider quota exhausted (%s); parked %d/%d for %gs", why, self._parks,
                                req.quota_max_parks, req.quota_park_s)
        await workflow.sleep(timedelta(seconds=req.quota_park_s))
        self._parked_until = None
        if self._stage == "parked-quota":
            self._set_stage(resume)

    async def _aggregate_partial(self, req: ResearchRequest) -> ReportRef:
        """The report of what is drafted so far, rendered without a model call."""
        wid = workflow.info().workflow_id
        drafts = [self._drafts[sq.id] for sq in self._plan if sq.id in self._drafts]
        return await workflow.execute_activity_method(
            WritingActivities.aggregate,
            AggregateInput(idempotency_key=f"{wid}/aggregate/partial/{self._llm_calls}", workflow_id=wid,
                           question=req.question, drafts=drafts, sources=list(self._sources.values()),
                           partial=True),
            task_queue=Queues.of_workflow_queue(workflow.info().task_queue).llm,
            **POLICIES["llm"].kwargs(),
        )

    # ------------------------------------------------------------------ the run

    def _set_stage(self, stage: str) -> None:
        self._stage = stage
        workflow.upsert_search_attributes([sa.STAGE.value_set(stage)])

    async def _gate(self, gate: GateName, req: ResearchRequest, report: ReportRef | None = None) -> DecisionRecord:
        self._pending = None
        self._open_gate = gate
        self._gate_version += 1
        self._notices = [t for t in self._notices if not t.done()]
        self._gate_opened_at = workflow.now()
        self._reminders = 0
        self._escalated = False
        self._gate_deadline = workflow.now() + timedelta(seconds=req.gate_deadline_s)
        self._set_stage(f"awaiting-{gate}-approval")
        workflow.upsert_search_attributes([sa.OPEN_GATE.value_set(gate)])
        if req.auto_approve:
            # Recorded like any reviewer's decision: visible in history, progress and the result.
            self._pending = DecisionRecord(gate=gate, decision="approve", reviewer="auto",
                                           comment="--auto-approve", at=workflow.now())
        elif workflow.patched(PATCH_GATE_REMINDERS):
            self._messages = workflow.patched(PATCH_GATE_MESSAGES)
            if self._messages:
                self._send(self._notice(gate, "gate_opened", "opened", list(req.allowed_reviewers),
                                        f"the {gate} gate is open", report=report))
            await self._wait_with_reminders(gate, req)
        else:
            try:
                await workflow.wait_condition(
                    lambda: self._pending is not None, timeout=timedelta(seconds=req.gate_deadline_s)
                )
            except TimeoutError:
                pass
        decision = self._pending or self._deadline_decision(gate, req)
        self._decisions.append(decision)
        self._open_gate = None
        self._gate_deadline = None
        self._gate_opened_at = None
        workflow.upsert_search_attributes([
            sa.OPEN_GATE.value_unset(),
            sa.LAST_DECISION.value_set(f"{gate}:{decision.decision}:{decision.reviewer}"),
        ])
        workflow.logger.info("gate %s: %s by %s", gate, decision.decision, decision.reviewer)
        if self._messages and not req.auto_approve:
            self._send(self._notice(gate, "decided", "decided", [], f"{gate} {decision.decision} by "
                                    f"{decision.reviewer}", report=report, decision=decision))
        return decision

    def _deadline_decision(self, gate: GateName, req: ResearchRequest) -> DecisionRecord:
        if req.deadline_policy == "escalate":
            to = ", ".join(req.escalation_reviewers) or "nobody named"
            return DecisionRecord(
                gate=gate, decision="reject", reviewer="deadline", at=workflow.now(), by_deadline=True,
                comment=f"no decision within {req.gate_deadline_s:g}s, nor within the extension of "
                        f"{req.gate_deadline_s:g}s after escalating to {to}; policy escalate",
            )
        return DecisionRecord(
            gate=gate, decision=req.deadline_policy, reviewer="deadline",
            comment=f"no decision within {req.gate_deadline_s:g}s; policy {req.deadline_policy}",
            at=workflow.now(), by_deadline=True,
        )

    async def _wait_with_reminders(self, gate: GateName, req: ResearchRequest) -> None:
        """Wait for a decision until the deadline, sending a reminder every ``reminder_interval_s``;
        with policy ``escalate``, notify the escalation reviewers at the deadline and extend it once.
        A decision (or the deadline) never waits for a notification still being retried."""
        interval = timedelta(seconds=req.reminder_interval_s)
        next_reminder = self._gate_opened_at + interval
        while self._pending is None:
            now = workflow.now()
            more = self._reminders < MAX_REMINDERS_PER_GATE
            notice = None
            if now >= self._gate_deadline:
                if req.deadline_policy != "escalate" or self._escalated:
                    return
                self._escalated = True
                self._gate_deadline = self._gate_deadline + timedelta(seconds=req.gate_deadline_s)
                next_reminder = now + interval
                notice = self._notice(gate, "escalation", "escalation", req.escalation_reviewers,
                                      f"no decision on the {gate} gate within {req.gate_deadline_s:g}s; "
                                      f"escalated, deadline extended once")
            elif more and now >= next_reminder:
                self._reminders += 1
                next_reminder = next_reminder + interval
                notice = self._notice(gate, "reminder", f"reminder/{self._reminders}",
                                      list(req.allowed_reviewers),
                                      f"the {gate} gate is waiting for a decision (reminder {self._reminders})")
            if notice is not None:
                sent = self._send(notice)
                done, wake = (lambda t=sent: self._pending is not None or t.done()), self._gate_deadline
            else:
                done = lambda: self._pending is not None  # noqa: E731
                wake = min(next_reminder, self._gate_deadline) if more else self._gate_deadline
            try:
                await workflow.wait_condition(done, timeout=wake - now)
            except TimeoutError:
                pass

    def _notice(self, gate: GateName, kind: str, suffix: str, recipients: list[str], message: str,
                report: ReportRef | None = None, decision: DecisionRecord | None = None) -> NotifyInput:
        wid = workflow.info().workflow_id
        extra: dict = {}
        if self._messages:  # what the gate message shows
            req = self._request
            cited = {c.uri: f"{c.title} - {c.uri}" for c in (report.citations if report else [])}
            extra = {"question": req.question if req else "", "plan": [s.text for s in self._plan],
                         "summary": report.summary if report else "", "sources": list(cited.values()),
                         "decision": decision}
        return NotifyInput(idempotency_key=f"{wid}/notify/{gate}/{self._gate_version}/{suffix}",
                           workflow_id=wid, gate=gate, version=self._gate_version, kind=kind,
                           recipients=recipients, message=message, deadline=self._gate_deadline, **extra)

    def _send(self, notice: NotifyInput) -> asyncio.Future:
        """Start a notification without waiting for it (a slow chat service never holds a gate)."""
        sent = asyncio.ensure_future(self._notify(notice))
        self._notices.append(sent)  # a strong reference while it runs
        return sent

    async def _drain_notices(self) -> None:
        """Before the run ends, let gate messages still being delivered finish (bounded)."""
        if not self._messages:
            return
        pending = [t for t in self._notices if not t.done()]
        if pending:
            try:
                await workflow.wait_condition(lambda: all(t.done() for t in pending), timeout=NOTICE_DRAIN)
            except TimeoutError:
                workflow.logger.warning("%d gate messages still undelivered at the end of the run", len(pending))

    async def _notify(self, notice: NotifyInput) -> None:
        """One `notify` call; a notification that keeps failing is logged, it never fails the run."""
        try:
            await workflow.execute_activity_method(
                NotifyActivities.notify, notice,
                task_queue=Queues.of_workflow_queue(workflow.info().task_queue).io,
                **POLICIES["notify"].kwargs(),
            )
        except ActivityError as exc:
            workflow.logger.warning("notify %s failed: %s", notice.idempotency_key, exc)

    @workflow.run
    async def run(self, req: ResearchRequest) -> ResearchResult:
        self._request = req
        self._budget_usd, self._max_llm_calls = req.budget_usd, req.max_llm_calls
        started = workflow.now()
        wid = workflow.info().workflow_id
        self._accounting = workflow.patched(PATCH_LLM_ACCOUNTING)
        self._mode = "offline"
        try:
            result = await self._research(req, wid, started)
        except _BudgetStop as stop:
            result = self._result(wid, req, self._mode, "budget_exhausted", started,
                                  f"stopped by its budget: {stop}; no `raise_budget` within "
                                  f"{req.budget_wait_s:g}s (the partial report is kept)", report=self._partial)
            self._set_stage("budget-exhausted")
        await self._drain_notices()
        return result

    async def _research(self, req: ResearchRequest, wid: str, started) -> ResearchResult:
        q = Queues.of_workflow_queue(workflow.info().task_queue)

        self._set_stage("planning")
        plan = await self._llm(req, lambda: workflow.execute_activity_method(
            PlanActivities.plan,
            PlanInput(idempotency_key=f"{wid}/plan", question=req.question,
                      max_sub_questions=req.max_sub_questions),
            task_queue=q.llm, **POLICIES["llm"].kwargs(),
        ))
        self._plan = list(plan.sub_questions)
        mode = self._mode = plan.mode

        decision = await self._gate("plan", req)
        if decision.decision != "approve":
            return self._result(wid, req, mode, "rejected", started,
                                f"plan rejected by {decision.reviewer}: {decision.comment}".rstrip(": "))

        self._set_stage("investigating")
        investigations = await asyncio.gather(*(self._investigate(wid, req, sq) for sq in self._plan))
        evidence = {r.sub_question_id: r.evidence for r in investigations}

        self._set_stage("drafting")
        drafts = list(await asyncio.gather(*(
            self._draft(wid, req, sq, evidence[sq.id], 0, []) for sq in self._plan
        )))
        drafts = await self._revise(wid, req, drafts, "", req.max_revision_rounds)

        comment_round = 0
        while True:
            self._set_stage("aggregating")
            report = await self._aggregate(wid, req, drafts, comment_round)
            decision = await self._gate("report", req, report)
            if decision.decision == "approve":
                break
            if decision.decision == "reject" or comment_round >= 3:
                return self._result(wid, req, mode, "rejected", started,
                                    f"report rejected by {decision.reviewer}: {decision.comment}".rstrip(": "),
                                    report=report)
            comment_round += 1  # request_changes: one more revision round with the comment
            drafts = await self._revise(wid, req, drafts, decision.comment, 1, tag=f"c{comment_round}")

        self._set_stage("publishing")
        result = self._result(wid, req, mode, "published", started, "published", report=report)
        published = await workflow.execute_activity_method(
            PublishActivities.publish,
            PublishInput(idempotency_key=f"{wid}/publish", workflow_id=wid, report_key=report.key,
                         result=result),
            task_queue=q.io, **POLICIES["store"].kwargs(),
        )
        self._set_stage("published")
        return result.model_copy(update={"report_path": published.path_markdown})

    # ------------------------------------------------------------------ steps

    async def _investigate(self, wid: str, req: ResearchRequest, sq: SubQuestion) -> InvestigateResult:
        res = await workflow.execute_child_workflow(
            InvestigateWorkflow.run,
            InvestigateInput(run_id=wid, question=req.question, sub_question=sq, corpus=req.corpus,
                             providers=req.search, max_sources=req.max_sources_per_sub_question,
                             evidence_limit=req.evidence_per_sub_question),
            id=f"{wid}/investigate/{sq.id}",
            task_queue=workflow.info().task_queue,
        )
        for s in res.sources:
            self._sources.setdefault(s.uri, s)
        self._chunks.update(res.chunks_by_hash)
        self._done_sub_questions += 1
        return res

    async def _draft(self, wid: str, req: ResearchRequest, sq: SubQuestion,
                     evidence: list[EvidenceRef], rnd: int, notes: list[str], tag: str = "") -> DraftRef:
        draft = await self._llm(req, lambda: workflow.execute_activity_method(
            WritingActivities.draft,
            DraftInput(idempotency_key=f"{wid}/draft/{sq.id}/r{rnd}{tag}", question=req.question,
                       sub_question=sq, evidence=evidence, revision_round=rnd, notes=notes),
            task_queue=Queues.of_workflow_queue(workflow.info().task_queue).llm,
            **POLICIES["llm"].kwargs(),
        ))
        self._drafts[sq.id] = draft
        return draft

    async def _revise(self, wid: str, req: ResearchRequest, drafts: list[DraftRef], comment: str,
                      rounds: int, tag: str = "") -> list[DraftRef]:
        """Critique, then redraft the weak sections with wider evidence, at most ``rounds`` times."""
        q = Queues.of_workflow_queue(workflow.info().task_queue)
        hashes = sorted({s.content_hash for s in self._sources.values() if s.content_hash})
        by_id = {sq.id: sq for sq in self._plan}
        for rnd in range(1, rounds + 1):
            self._set_stage("critiquing")
            critique = await self._llm(req, lambda rnd=rnd, drafts=drafts, comment=comment:
                                       workflow.execute_activity_method(
                WritingActivities.critique,
                CritiqueInput(idempotency_key=f"{wid}/critique/r{rnd}{tag}", question=req.question,
                              drafts=drafts, reviewer_comment=comment),
                task_queue=q.llm, **POLICIES["llm"].kwargs(),
            ))
            weak = {i.sub_question_id for i in critique.issues}
            if not weak or not hashes:
                break
            self._round += 1
            self._set_stage("revising")

            async def redo(d: DraftRef, rnd: int = rnd, weak: set[str] = weak,
                           comment: str = comment) -> DraftRef:
                if d.sub_question_id not in weak:
                    return d
                sq = by_id[d.sub_question_id]
                query = " ".join(x for x in (sq.text, req.question, comment) if x)
                wider = await workflow.execute_activity_method(
                    IndexActivities.retrieve,
                    RetrieveInput(idempotency_key=f"{wid}/retrieve/{sq.id}/r{rnd}{tag}", query=query,
                                  content_hashes=hashes, limit=req.evidence_per_sub_question * 2),
                    task_queue=q.cpu, **POLICIES["embed"].kwargs(),
                )
                notes = [comment] if comment else []
                return await self._draft(wid, req, sq, wider.evidence, rnd, notes, tag)

            drafts = list(await asyncio.gather(*(redo(d) for d in drafts)))
            comment = ""  # a reviewer's comment drives one round; later rounds are the critic's
        return drafts

    async def _aggregate(self, wid: str, req: ResearchRequest, drafts: list[DraftRef],
                         version: int) -> ReportRef:
        return await self._llm(req, lambda: workflow.execute_activity_method(
            WritingActivities.aggregate,
            AggregateInput(idempotency_key=f"{wid}/aggregate/v{version}", workflow_id=wid,
                           question=req.question, drafts=drafts, sources=list(self._sources.values())),
            task_queue=Queues.of_workflow_queue(workflow.info().task_queue).llm,
            **POLICIES["llm"].kwargs(),
        ))

    def _result(self, wid: str, req: ResearchRequest, mode: str, status: str, started,
                message: str, report: ReportRef | None = None) -> ResearchResult:
        srcs = list(self._sources.values())
        stats = Stats(
            sources_found=len(srcs),
            sources_parsed=sum(1 for s in srcs if s.status == "parsed"),
            sources_failed=sum(1 for s in srcs if s.status == "failed"),
            chunks_indexed=sum(self._chunks.values()),
            llm_calls=self._llm_calls,
            duration_s=round((workflow.now() - started).total_seconds(), 3),
            tokens_in=self._usage.tokens_in,
            tokens_out=self._usage.tokens_out,
            cost_usd=self._usage.cost_usd,
            citations_dropped=self._citations_dropped,
        )
        return ResearchResult(
            workflow_id=wid, status=status, question=req.question, mode=mode, message=message,
            report_key=report.key if report else None,
            citations=report.citations if report else [], sources=srcs, stats=stats,
            decisions=list(self._decisions),
        )
