"""ResearchWorkflow: plan, plan gate, investigate (child per sub-question), draft, critique/revise,
aggregate, report gate, publish. Orchestration only; every side effect is an activity.

The gates live in workflows/gates.py and the model budget in workflows/budget.py; this file is the
pipeline, and its handlers delegate to them (Temporal needs the decorators on the class).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from functools import partial

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from activities.indexing import IndexActivities
    from activities.planning import PlanActivities
    from activities.publishing import PublishActivities
    from activities.writing import WritingActivities
    from deepsci.contracts import (
        AggregateInput,
        BudgetRaise,
        BudgetState,
        CritiqueInput,
        DecisionOutcome,
        Degradation,
        DraftInput,
        DraftRef,
        EvidenceRef,
        GateDecision,
        InvestigateInput,
        InvestigateResult,
        PlanInput,
        Progress,
        PublishInput,
        ReportRef,
        ResearchRequest,
        ResearchResult,
        RetrieveInput,
        RunStatus,
        SourceRecord,
        Stats,
        SubQuestion,
    )
    from workflows import search_attributes as sa
    from workflows import telemetry
    from workflows.budget import PATCH_LLM_ACCOUNTING, Budget, BudgetStop
    from workflows.calls import call
    from workflows.degrade import PATCH_STEP_DEGRADATION, Degrader
    from workflows.gates import PATCH_GATE_MESSAGES, PATCH_GATE_REMINDERS, Gates
    from workflows.investigate import InvestigateWorkflow
    from workflows.stats import run_stats

__all__ = ["ResearchWorkflow", "PATCH_GATE_REMINDERS", "PATCH_GATE_MESSAGES", "PATCH_LLM_ACCOUNTING",
           "PATCH_STAGES_END_TRUE"]

# After this many reviewer comments on the report, a further request_changes rejects it.
MAX_COMMENT_ROUNDS = 3
# A run's last stage (query and DeepsciStage) says how it ended: `rejected` or `failed` instead of
# the stage it stopped in. Runs started before this patch keep their old commands on replay.
PATCH_STAGES_END_TRUE = "stages-end-true"


@workflow.defn
class ResearchWorkflow:
    def __init__(self) -> None:
        self.request: ResearchRequest | None = None
        self.stage = "starting"
        self.mode = "offline"
        self.plan: list[SubQuestion] = []
        self.sources: dict[str, SourceRecord] = {}  # by URI, first seen wins
        self.chunks: dict[str, int] = {}  # chunks indexed, by content hash
        self.drafts: dict[str, DraftRef] = {}  # the latest draft, by sub-question id
        self.done_sub_questions = 0
        self.round = 0
        self.report_key: str | None = None  # the latest aggregated report (shown at the report gate)
        self.true_end = False  # PATCH_STAGES_END_TRUE, decided once at the start of the run
        self.gates = Gates(self)
        self.budget = Budget(self)
        self.degrader = Degrader()
        self._stage_since: datetime | None = None  # for deepsci_stage_duration

    @workflow.run
    async def run(self, req: ResearchRequest) -> ResearchResult:
        self.request = req
        self.budget.budget_usd, self.budget.max_llm_calls = req.budget_usd, req.max_llm_calls
        started = workflow.now()
        wid = workflow.info().workflow_id
        self.budget.accounting = workflow.patched(PATCH_LLM_ACCOUNTING)
        self.true_end = true_end = workflow.patched(PATCH_STAGES_END_TRUE)
        self.degrader.enabled = workflow.patched(PATCH_STEP_DEGRADATION)
        telemetry.count("deepsci_runs_started", "Research runs started")
        try:
            result = await self._research(req, wid, started)
            if true_end and result.status == "rejected":
                self.set_stage("rejected")
        except BudgetStop as stop:
            result = self._result(wid, req, "budget_exhausted", started,
                                  f"stopped by its budget: {stop}; no `raise_budget` within "
                                  f"{req.budget_wait_s:g}s (the partial report is kept)", report=self.budget.partial)
            self.set_stage("budget-exhausted")
        except FailureError:
            if true_end:  # the run fails with this error; its stage should not look in progress
                self.set_stage("failed")
            self._finished("failed", started)
            raise
        except asyncio.CancelledError:
            if true_end:
                self.set_stage("cancelled")
            self._finished("cancelled", started)
            raise
        await self.gates.drain()
        self._finished(result.status, started)
        return result

    async def _research(self, req: ResearchRequest, wid: str, started: datetime) -> ResearchResult:
        self.set_stage("planning")
        plan = await self.degrader.run("plan", "", "the question itself is the one sub-question",
                                       lambda: self.budget.step(req, lambda: call(PlanActivities.plan, PlanInput(
                                           idempotency_key=f"{wid}/plan", question=req.question,
                                           max_sub_questions=req.max_sub_questions))))
        if isinstance(plan, Degradation):
            self.plan = [SubQuestion(id="sq1", text=req.question)]
        else:
            self.plan = list(plan.sub_questions)
            self.mode = plan.mode

        decision = await self.gates.wait("plan", req)
        if decision.decision != "approve":
            return self._result(wid, req, "rejected", started,
                                f"plan rejected by {decision.reviewer}: {decision.comment}".rstrip(": "))

        self.set_stage("investigating")
        investigations = await asyncio.gather(*(self._investigate(wid, req, sq) for sq in self.plan))
        evidence = {r.sub_question_id: r.evidence for r in investigations}

        self.set_stage("drafting")
        drafts = list(await asyncio.gather(*(
            self._draft(wid, req, sq, evidence[sq.id], 0, []) for sq in self.plan
        )))
        drafts = await self._revise(wid, req, drafts, "", req.max_revision_rounds)

        comment_round = 0
        while True:
            self.set_stage("aggregating")
            report = await self._aggregate(wid, req, drafts, comment_round)
            decision = await self.gates.wait("report", req, report)
            if decision.decision == "approve":
                break
            if decision.decision == "reject" or comment_round >= MAX_COMMENT_ROUNDS:
                return self._result(wid, req, "rejected", started,
                                    f"report rejected by {decision.reviewer}: {decision.comment}".rstrip(": "),
                                    report=report)
            comment_round += 1  # request_changes: one more revision round with the comment
            drafts = await self._revise(wid, req, drafts, decision.comment, 1, tag=f"c{comment_round}")

        self.set_stage("publishing")
        result = self._result(wid, req, "published", started, "published", report=report)
        published = await call(PublishActivities.publish, PublishInput(
            idempotency_key=f"{wid}/publish", workflow_id=wid, report_key=report.key, result=result))
        self.set_stage("published")
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
            self.sources.setdefault(s.uri, s)
        self.chunks.update(res.chunks_by_hash)
        self.done_sub_questions += 1
        self._show_details()
        return res

    async def _draft(self, wid: str, req: ResearchRequest, sq: SubQuestion,
                     evidence: list[EvidenceRef], rnd: int, notes: list[str], tag: str = "") -> DraftRef:
        earlier = self.drafts.get(sq.id) if rnd or tag else None  # a failed revision keeps it
        out = await self.degrader.run(
            "draft", sq.id, "kept the earlier draft" if earlier else "the section says it has no supported answer",
            lambda: self.budget.step(req, lambda: call(WritingActivities.draft, DraftInput(
                idempotency_key=f"{wid}/draft/{sq.id}/r{rnd}{tag}", question=req.question, sub_question=sq,
                evidence=evidence, revision_round=rnd, notes=notes))))
        if isinstance(out, Degradation):
            out = earlier or DraftRef(key="", sub_question_id=sq.id, sentences=0, failed=out.reason,
                                      sub_question=sq.text)
        self.drafts[sq.id] = out
        return out

    async def _revise(self, wid: str, req: ResearchRequest, drafts: list[DraftRef], comment: str,
                      rounds: int, tag: str = "") -> list[DraftRef]:
        """Critique, then redraft the weak sections with wider evidence, at most ``rounds`` times."""
        hashes = sorted({s.content_hash for s in self.sources.values() if s.content_hash})
        by_id = {sq.id: sq for sq in self.plan}
        for rnd in range(1, rounds + 1):
            self.set_stage("critiquing")
            critique = await self.degrader.run("critique", "", "skipped: no revision from it", partial(
                self.budget.step, req, partial(
                    call, WritingActivities.critique,
                    CritiqueInput(idempotency_key=f"{wid}/critique/r{rnd}{tag}", question=req.question,
                                  drafts=drafts, reviewer_comment=comment))))
            if isinstance(critique, Degradation):
                break
            weak = {i.sub_question_id for i in critique.issues}
            if not weak or not hashes:
                break
            self.round += 1
            self.set_stage("revising")

            async def redo(d: DraftRef, rnd: int = rnd, weak: set[str] = weak,
                           comment: str = comment) -> DraftRef:
                if d.sub_question_id not in weak:
                    return d
                sq = by_id[d.sub_question_id]
                query = " ".join(x for x in (sq.text, req.question, comment) if x)
                wider = await call(IndexActivities.retrieve, RetrieveInput(
                    idempotency_key=f"{wid}/retrieve/{sq.id}/r{rnd}{tag}", query=query,
                    content_hashes=hashes, limit=req.evidence_per_sub_question * 2))
                notes = [comment] if comment else []
                return await self._draft(wid, req, sq, wider.evidence, rnd, notes, tag)

            drafts = list(await asyncio.gather(*(redo(d) for d in drafts)))
            comment = ""  # a reviewer's comment drives one round; later rounds are the critic's
        return drafts

    async def _aggregate(self, wid: str, req: ResearchRequest, drafts: list[DraftRef],
                         version: int) -> ReportRef:
        sources = list(self.sources.values())
        report = await self.degrader.run(
            "aggregate", "", "rendered without a model summary",
            lambda: self.budget.step(req, lambda: call(WritingActivities.aggregate, AggregateInput(
                idempotency_key=f"{wid}/aggregate/v{version}", workflow_id=wid, question=req.question,
                drafts=drafts, sources=sources, degraded=list(self.degrader.notes)))))
        if isinstance(report, Degradation):  # the deterministic render: no model call, nothing to fail on
            report = await call(WritingActivities.aggregate, AggregateInput(
                idempotency_key=f"{wid}/aggregate/v{version}/plain", workflow_id=wid, question=req.question,
                drafts=drafts, sources=sources, no_model=True, degraded=list(self.degrader.notes)))
        if self.degrader.enabled:
            self.mode = report.mode  # a failed plan left the offline default in place
        self.report_key = report.key
        return report

    # ------------------------------------------------------------------ handlers (gates.py, budget.py)

    @workflow.update
    def decide(self, d: GateDecision) -> DecisionOutcome:
        return self.gates.decide(d)

    @decide.validator
    def _validate_decide(self, d: GateDecision) -> None:
        self.gates.validate(d)

    @workflow.signal
    def decide_signal(self, d: GateDecision) -> None:
        """Fire-and-forget twin of `decide` for `temporal workflow signal` and the Web UI."""
        self.gates.signal(d)

    @workflow.update
    def raise_budget(self, r: BudgetRaise) -> BudgetState:
        return self.budget.raise_(r)

    @raise_budget.validator
    def _validate_raise_budget(self, r: BudgetRaise) -> None:
        self.budget.validate_raise(r)

    @workflow.query
    def progress(self) -> Progress:
        g, b = self.gates, self.budget
        return Progress(
            stage=self.stage, sub_questions_total=len(self.plan), sub_questions_done=self.done_sub_questions,
            revision_round=self.round, plan=[s.text for s in self.plan],
            open_gate=g.open, gate_deadline=g.deadline, decisions=list(g.decisions), gate_version=g.version,
            gate_opened_at=g.opened_at, reminders_sent=g.reminders, escalated=g.escalated,
            budget_usd=b.budget_usd, max_llm_calls=b.max_llm_calls, budget_stop=b.stop,
            parked_until=b.parked_until, **self._stats().model_dump(exclude={"duration_s"}),
            question=self.request.question if self.request else "", report_key=self.report_key,
        )

    # ------------------------------------------------------------------ bookkeeping

    def set_stage(self, stage: str) -> None:
        now = workflow.now()
        if self._stage_since is not None and self.stage != stage:
            telemetry.seconds("deepsci_stage_duration", "Time spent in each stage", (now - self._stage_since)
                              .total_seconds(), {"stage": self.stage})
        if stage != self.stage and stage in ("budget-exhausted", "parked-quota"):
            telemetry.count(f"deepsci_{stage.replace('-', '_')}", f"Runs entering {stage}")
        self._stage_since = now
        self.stage = stage
        workflow.upsert_search_attributes([sa.STAGE.value_set(stage)])
        if self.true_end:
            # What `deepsci pending` lists from one visibility query (the memo needs no
            # registration, unlike a search attribute): the question and the open gate's version.
            g = self.gates
            workflow.upsert_memo({
                "question": self.request.question if self.request else "", "stage": stage,
                "gate": g.open, "gate_version": g.version,
                "gate_opened_at": g.opened_at.isoformat() if g.open and g.opened_at else None,
                "gate_deadline": g.deadline.isoformat() if g.open and g.deadline else None,
            })
        self._show_details()

    def _show_details(self) -> None:
        """The Web UI's current-details line: stage, counts, open gate, cost (not a command)."""
        st, g = self._stats(), self.gates
        parts = [f"**{self.stage}**"]
        if self.plan:
            parts.append(f"sub-questions {self.done_sub_questions}/{len(self.plan)}")
        if st.sources_found:
            parts.append(f"sources {st.sources_parsed} parsed, {st.sources_failed} failed; {st.chunks_indexed} chunks")
        if g.open:
            parts.append(f"gate **{g.open}** v{g.version} open until {g.deadline:%Y-%m-%d %H:%M} UTC"
                         if g.deadline else f"gate **{g.open}** v{g.version} open")
        if st.llm_calls:
            parts.append(f"{st.llm_calls} model calls, ${st.cost_usd:.4f}")
        workflow.set_current_details(" · ".join(parts))

    def _finished(self, outcome: str, started: datetime) -> None:
        telemetry.count("deepsci_runs_finished", "Research runs finished, by outcome", {"outcome": outcome})
        telemetry.seconds("deepsci_run_duration", "Research run duration, by outcome",
                          (workflow.now() - started).total_seconds(), {"outcome": outcome})

    def _stats(self, duration_s: float = 0.0) -> Stats:
        b = self.budget
        return run_stats(self.sources.values(), self.chunks, b.calls, b.usage, b.citations_dropped, duration_s,
                         b.claims_unsupported)

    def _result(self, wid: str, req: ResearchRequest, status: RunStatus, started: datetime,
                message: str, report: ReportRef | None = None) -> ResearchResult:
        return ResearchResult(
            workflow_id=wid, status=status, question=req.question, mode=self.mode, message=message,
            report_key=report.key if report else None,
            citations=report.citations if report else [], sources=list(self.sources.values()),
            stats=self._stats(round((workflow.now() - started).total_seconds(), 3)),
            decisions=list(self.gates.decisions), degraded=list(self.degrader.notes),
        )
