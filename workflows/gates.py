"""The two approval gates of a run (plan, report): decisions, reminders, deadlines, escalation, gate
messages. Workflow code; its state is one dataclass, ``Gates``, held by ``ResearchWorkflow``, whose
``decide`` Update / ``decide_signal`` Signal handlers delegate here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from deepsci.contracts import (
        DecisionOutcome,
        DecisionRecord,
        GateDecision,
        GateName,
        NoticeKind,
        NotifyInput,
        ReportRef,
        ResearchRequest,
        SubQuestion,
    )
    from workflows import search_attributes as sa
    from workflows import telemetry
    from workflows.calls import call

__all__ = ["Gates", "GateHost", "PATCH_GATE_REMINDERS", "PATCH_GATE_MESSAGES", "MAX_REMINDERS_PER_GATE",
           "NOTICE_DRAIN"]

# Gates wait in steps (a timer per reminder) and call `notify`; runs started before this patch
# keep their single deadline timer when replayed (docs/versioning.md).
PATCH_GATE_REMINDERS = "gate-reminders-escalation"
# Keeps a run's history bounded whatever reminder_interval_s says (two activities' worth of
# events per reminder); after this many, a gate waits quietly for its deadline.
MAX_REMINDERS_PER_GATE = 24
# Each gate posts a message when it opens and edits it when it closes (`notify` gate_opened /
# decided: the Slack message with buttons); before this patch gates only sent reminders.
PATCH_GATE_MESSAGES = "gate-messages"
# How long a finishing run waits for gate messages still being delivered.
NOTICE_DRAIN = timedelta(minutes=2)


class GateHost(Protocol):
    """What a gate needs from its run: the request, the plan it shows (an edit replaces it), the stage."""

    request: ResearchRequest | None
    plan: list[SubQuestion]

    def set_stage(self, stage: str) -> None: ...


@dataclass
class Gates:
    run: GateHost = field(repr=False)
    open: GateName | None = None
    version: int = 0  # goes up each time a gate opens; a decision may name the version it saw
    deadline: datetime | None = None
    opened_at: datetime | None = None
    pending: DecisionRecord | None = None  # the decision that closes the open gate
    decisions: list[DecisionRecord] = field(default_factory=list)
    outcomes: dict[tuple, DecisionOutcome] = field(default_factory=dict)  # repeated decisions
    reminders: int = 0
    escalated: bool = False
    messages: bool = False  # PATCH_GATE_MESSAGES, decided once per run at its first gate
    notices: list[asyncio.Future] = field(default_factory=list)  # notify calls still running

    # ------------------------------------------------------------------ decide: validator, update, signal

    @staticmethod
    def _key(d: GateDecision) -> tuple:
        return (d.gate, d.decision, d.reviewer, d.comment, tuple(d.plan or ()), d.version)

    def validate(self, d: GateDecision) -> None:
        """Refuse (ValueError) a decision the open gate cannot take; a repeat of an accepted one passes."""
        if self._key(d) in self.outcomes:
            return
        req = self.run.request
        if self.open != d.gate:
            raise ValueError(f"gate {d.gate!r} is not open (open gate: {self.open or 'none'})")
        if d.version is not None and d.version != self.version:
            if d.version < self.version:
                # Versions count gate openings across both gates: version 1 is always the plan.
                seen = self.decisions[d.version - 1].gate if 0 < d.version <= len(self.decisions) else d.gate
                raise ValueError(f"stale decision: made against version {d.version} of the {seen}, "
                                 f"but version {self.version} is shown now; review it and decide again")
            raise ValueError(f"unknown version {d.version} of the {d.gate} (the one shown is "
                             f"version {self.version})")
        if req and req.allowed_reviewers:
            allowed = list(req.allowed_reviewers) + (list(req.escalation_reviewers) if self.escalated else [])
            if d.reviewer not in allowed:
                raise ValueError(f"reviewer {d.reviewer!r} may not decide on this run")
        if d.gate == "plan" and d.decision == "request_changes":
            raise ValueError("the plan gate takes approve (optionally with an edited plan) or reject")
        if d.plan is not None and (d.gate != "plan" or not [p for p in d.plan if p.strip()]):
            raise ValueError("an edited plan needs at least one sub-question, on the plan gate")

    def decide(self, d: GateDecision) -> DecisionOutcome:
        """Record a validated decision; the same decision sent twice gets the first outcome."""
        key = self._key(d)
        if key in self.outcomes:
            return self.outcomes[key]
        self.pending = DecisionRecord(gate=d.gate, decision=d.decision, reviewer=d.reviewer,
                                      comment=d.comment, at=workflow.now())
        if d.plan is not None:
            self.run.plan = [SubQuestion(id=f"sq{i + 1}", text=t.strip())
                             for i, t in enumerate(p for p in d.plan if p.strip())]
        outcome = DecisionOutcome(gate=d.gate, decision=d.decision, reviewer=d.reviewer,
                                  accepted=True, message=f"{d.gate} {d.decision} by {d.reviewer}",
                                  version=self.version)
        self.outcomes[key] = outcome
        return outcome

    def signal(self, d: GateDecision) -> None:
        """The fire-and-forget twin of ``decide``: a refused decision is logged, not raised."""
        try:
            self.validate(d)
        except ValueError as err:
            workflow.logger.warning("decision refused: %s", err)
            return
        self.decide(d)

    # ------------------------------------------------------------------ one gate, open to closed

    async def wait(self, gate: GateName, req: ResearchRequest, report: ReportRef | None = None) -> DecisionRecord:
        """Open ``gate``, wait for a decision (or the deadline policy's), close it and return the decision."""
        self.pending = None
        self.open = gate
        self.version += 1
        self.notices = [t for t in self.notices if not t.done()]
        self.opened_at = opened_at = workflow.now()
        self.reminders = 0
        self.escalated = False
        self.deadline = deadline = workflow.now() + timedelta(seconds=req.gate_deadline_s)
        self.run.set_stage(f"awaiting-{gate}-approval")
        workflow.upsert_search_attributes([sa.OPEN_GATE.value_set(gate)])
        telemetry.count("deepsci_gates_opened", "Gates opened", {"gate": gate})
        if req.auto_approve:
            # Recorded like any reviewer's decision: visible in history, progress and the result.
            self.pending = DecisionRecord(gate=gate, decision="approve", reviewer="auto",
                                          comment="--auto-approve", at=workflow.now())
        elif workflow.patched(PATCH_GATE_REMINDERS):
            self.messages = workflow.patched(PATCH_GATE_MESSAGES)
            if self.messages:
                self._send(self._notice(gate, "gate_opened", "opened", list(req.allowed_reviewers),
                                        f"the {gate} gate is open", report=report))
            await self._wait_with_reminders(gate, req, opened_at, deadline)
        else:
            try:
                await workflow.wait_condition(
                    lambda: self.pending is not None, timeout=timedelta(seconds=req.gate_deadline_s)
                )
            except TimeoutError:
                pass
        decision = self.pending or self._deadline_decision(gate, req)
        self.decisions.append(decision)
        self.open = None
        self.deadline = None
        self.opened_at = None
        workflow.upsert_search_attributes([
            sa.OPEN_GATE.value_unset(),
            sa.LAST_DECISION.value_set(f"{gate}:{decision.decision}:{decision.reviewer}"),
        ])
        workflow.logger.info("gate %s: %s by %s", gate, decision.decision, decision.reviewer)
        self._observe(gate, decision, (workflow.now() - opened_at).total_seconds())
        if self.messages and not req.auto_approve:
            self._send(self._notice(gate, "decided", "decided", [], f"{gate} {decision.decision} by "
                                    f"{decision.reviewer}", report=report, decision=decision))
        return decision

    def _observe(self, gate: GateName, decision: DecisionRecord, waited_s: float) -> None:
        """The decision as a span of the run's trace and as metrics (both replay-safe)."""
        attrs = {"gate": gate, "decision": decision.decision}
        telemetry.completed_span(f"gate {gate}", {
            "deepsci.gate": gate, "deepsci.gate.decision": decision.decision,
            "deepsci.gate.reviewer": decision.reviewer, "deepsci.gate.version": self.version,
            "deepsci.gate.waited_s": round(waited_s, 3)})
        telemetry.count("deepsci_gate_decisions", "Gate decisions, by gate and outcome", attrs)
        telemetry.seconds("deepsci_gate_wait", "Time from a gate opening to its decision", waited_s, attrs)

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

    async def _wait_with_reminders(self, gate: GateName, req: ResearchRequest, opened_at: datetime,
                                   deadline: datetime) -> None:
        """Wait for a decision until the deadline, sending a reminder every ``reminder_interval_s``;
        with policy ``escalate``, notify the escalation reviewers at the deadline and extend it once.
        A decision (or the deadline) never waits for a notification still being retried."""
        interval = timedelta(seconds=req.reminder_interval_s)
        next_reminder = opened_at + interval
        while self.pending is None:
            now = workflow.now()
            more = self.reminders < MAX_REMINDERS_PER_GATE
            notice = None
            if now >= deadline:
                if req.deadline_policy != "escalate" or self.escalated:
                    return
                self.escalated = True
                self.deadline = deadline = deadline + timedelta(seconds=req.gate_deadline_s)
                next_reminder = now + interval
                notice = self._notice(gate, "escalation", "escalation", req.escalation_reviewers,
                                      f"no decision on the {gate} gate within {req.gate_deadline_s:g}s; "
                                      f"escalated, deadline extended once")
            elif more and now >= next_reminder:
                self.reminders += 1
                next_reminder = next_reminder + interval
                notice = self._notice(gate, "reminder", f"reminder/{self.reminders}",
                                      list(req.allowed_reviewers),
                                      f"the {gate} gate is waiting for a decision (reminder {self.reminders})")
            done: Callable[[], bool]
            if notice is not None:
                sent = self._send(notice)
                done, wake = partial(self._decided_or_sent, sent), deadline
            else:
                done, wake = (lambda: self.pending is not None), (min(next_reminder, deadline) if more else deadline)
            try:
                await workflow.wait_condition(done, timeout=wake - now)
            except TimeoutError:
                pass

    def _decided_or_sent(self, sent: asyncio.Future) -> bool:
        return self.pending is not None or sent.done()

    # ------------------------------------------------------------------ gate messages

    def _notice(self, gate: GateName, kind: NoticeKind, suffix: str, recipients: list[str], message: str,
                report: ReportRef | None = None, decision: DecisionRecord | None = None) -> NotifyInput:
        wid = workflow.info().workflow_id
        extra: dict = {}
        if self.messages:  # what the gate message shows
            req = self.run.request
            cited = {c.uri: f"{c.title} - {c.uri}" for c in (report.citations if report else [])}
            extra = {"question": req.question if req else "", "plan": [s.text for s in self.run.plan],
                     "summary": report.summary if report else "", "sources": list(cited.values()),
                     "decision": decision}
        return NotifyInput(idempotency_key=f"{wid}/notify/{gate}/{self.version}/{suffix}",
                           workflow_id=wid, gate=gate, version=self.version, kind=kind,
                           recipients=recipients, message=message, deadline=self.deadline, **extra)

    def _send(self, notice: NotifyInput) -> asyncio.Future:
        """Start a notification without waiting for it (a slow chat service never holds a gate)."""
        sent = asyncio.ensure_future(_notify(notice))
        self.notices.append(sent)  # a strong reference while it runs
        return sent

    async def drain(self) -> None:
        """Before the run ends, let gate messages still being delivered finish (bounded)."""
        if not self.messages:
            return
        pending = [t for t in self.notices if not t.done()]
        if pending:
            try:
                await workflow.wait_condition(lambda: all(t.done() for t in pending), timeout=NOTICE_DRAIN)
            except TimeoutError:
                workflow.logger.warning("%d gate messages still undelivered at the end of the run", len(pending))


async def _notify(notice: NotifyInput) -> None:
    """One `notify` call; a notification that keeps failing is logged, it never fails the run."""
    try:
        await call(NotifyActivities.notify, notice)
    except ActivityError as exc:
        workflow.logger.warning("notify %s failed: %s", notice.idempotency_key, exc)
