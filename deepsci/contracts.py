"""Pydantic contracts: one model in and one model out for every workflow, activity, update, signal and query.

Rule: add fields with defaults; never change a field's meaning (running histories hold old payloads).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GateName = Literal["plan", "report"]
DecisionKind = Literal["approve", "reject", "request_changes"]
DeadlinePolicy = Literal["reject", "approve", "escalate"]
SourceStatus = Literal["parsed", "failed"]
IssueKind = Literal["uncovered", "unsupported", "thin", "reviewer", "dropped_citation", "model"]
RunStatus = Literal["running", "published", "rejected", "failed", "budget_exhausted"]
DegradedStep = Literal["plan", "draft", "critique", "aggregate"]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


# ---------------------------------------------------------------- run request and result


# Upper bounds on every wait and budget: a timer past year 9999 ("date value out of range") or a NaN
# comparison would wedge a run forever, so the request refuses them; the CLI shows these bounds.
MAX_WAIT_S = 365 * 24 * 3600
MAX_QUOTA_PARK_S = 7 * 24 * 3600
MAX_BUDGET_USD = 1_000_000
MAX_LLM_CALLS = 1_000_000
# A run id names child workflows, idempotency keys and report files: past this it is refused up front
# (a 300-character id once ran every step, then failed to publish with "File name too long").
MAX_RUN_ID_LEN = 128


class ResearchRequest(Model):
    """What a run is asked to do. The CLI derives its `deepsci run` options from these fields
    (default, bounds and help), so they are said here once."""

    question: str = Field(min_length=3, max_length=2000)
    corpus: str | None = Field(
        default=None, description="Folder searched by the local provider (unset: DEEPSCI_CORPUS_DIR)."
    )
    search: list[str] = Field(default_factory=lambda: ["local"], description="Search providers in fallback order.")
    max_sub_questions: int = Field(default=4, ge=1, le=12, description="Sub-questions the plan has at most.")
    max_sources_per_sub_question: int = Field(default=4, ge=1, le=25, description="Sources per sub-question.")
    max_revision_rounds: int = Field(default=1, ge=0, le=5, description="Revision rounds at most.")
    evidence_per_sub_question: int = Field(default=6, ge=1, le=30)
    gate_deadline_s: float = Field(
        default=24 * 3600, gt=0, le=MAX_WAIT_S, allow_inf_nan=False,
        description="Seconds a gate waits for a decision (at most 365 days).",
    )
    deadline_policy: DeadlinePolicy = Field(
        default="reject",
        description="At a gate's deadline: reject, approve, or escalate (notify the escalation "
                    "reviewers, extend the deadline once by the gate deadline, then reject).",
    )
    auto_approve: bool = Field(default=False, description="Approve both gates as reviewer `auto`.")
    allowed_reviewers: list[str] = Field(
        default_factory=list, description="Empty means any reviewer may decide."
    )
    reminder_interval_s: float = Field(
        default=4 * 3600, gt=0, le=MAX_WAIT_S, allow_inf_nan=False,
        description="Seconds between reminders while a gate waits (at most 365 days).",
    )
    escalation_reviewers: list[str] = Field(
        default_factory=list,
        description="Notified at the deadline with policy escalate; they may then decide too.",
    )
    budget_usd: float | None = Field(
        default=None, gt=0, le=MAX_BUDGET_USD, allow_inf_nan=False,
        description="Stop before a model call would take the run's cost past this (USD).",
    )
    max_llm_calls: int | None = Field(
        default=None, ge=1, le=MAX_LLM_CALLS, description="Stop before model call number N+1."
    )
    budget_wait_s: float = Field(
        default=24 * 3600, gt=0, le=MAX_WAIT_S, allow_inf_nan=False,
        description="Seconds a run stopped by its budget waits for a budget raise before it ends "
                    "with status budget_exhausted, its partial report kept (at most 365 days).",
    )
    quota_park_s: float = Field(
        default=900, gt=0, le=MAX_QUOTA_PARK_S, allow_inf_nan=False,
        description="Seconds a run parks when the model provider says its quota is exhausted, "
                    "before it tries again (at most 7 days).",
    )
    quota_max_parks: int = Field(default=16, ge=0, le=1000, description="After this many parks the run fails.")


class Citation(Model):
    n: int
    source_id: str
    title: str
    uri: str
    locator: str
    quote: str
    ref: int = Field(default=0, description="The source's reference number in the Markdown (one per source).")
    claim: str = Field(default="", description="The claim this quote supports, when it is not the quote itself.")


class SourceRecord(Model):
    source_id: str
    uri: str
    title: str
    kind: str
    status: SourceStatus
    error: str | None = None
    content_hash: str | None = None
    chars: int = 0
    pages: int = 0  # PDF pages (0 for other kinds, or when the document was parsed in an earlier run)
    pages_without_text: int = 0  # PDF pages that gave no text: scanned images, drawings, blank


class LlmUsage(Model):
    """What model calls cost: summed per activity, then per run (zero for the offline engine)."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    by_model: dict[str, int] = Field(default_factory=dict, description="HTTP calls per model.")

    def plus(self, other: LlmUsage) -> LlmUsage:
        models = dict(self.by_model)
        for m, n in other.by_model.items():
            models[m] = models.get(m, 0) + n
        return LlmUsage(calls=self.calls + other.calls, tokens_in=self.tokens_in + other.tokens_in,
                        tokens_out=self.tokens_out + other.tokens_out,
                        cost_usd=round(self.cost_usd + other.cost_usd, 8), by_model=models)


class Stats(Model):
    sources_found: int = 0
    sources_parsed: int = 0
    sources_failed: int = 0
    chunks_indexed: int = 0
    llm_calls: int = 0
    duration_s: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    citations_dropped: int = Field(default=0, description="Model citations whose quote was not in the chunk.")
    claims_unsupported: int = Field(default=0, description="Model claims whose verified quote does not support "
                                                           "them (deepsci/claims.py); dropped like a bad quote.")


class Degradation(Model):
    """A model step that failed after its retries; the run published without it (see workflows/degrade.py)."""

    step: DegradedStep
    sub_question_id: str = ""
    reason: str
    fallback: str = Field(default="", description="What the run did instead, in words.")


class DecisionRecord(Model):
    gate: GateName
    decision: DecisionKind
    reviewer: str
    comment: str = ""
    at: datetime
    by_deadline: bool = False


class ResearchResult(Model):
    workflow_id: str
    status: RunStatus
    question: str
    mode: str
    message: str = ""
    report_key: str | None = None
    report_path: str | None = None
    citations: list[Citation] = Field(default_factory=list)
    sources: list[SourceRecord] = Field(default_factory=list)
    stats: Stats = Field(default_factory=Stats)
    decisions: list[DecisionRecord] = Field(default_factory=list)
    degraded: list[Degradation] = Field(
        default_factory=list, description="Model steps that failed for good; the run went on without them.")


# ---------------------------------------------------------------- gates, progress


class GateDecision(Model):
    """Payload of the `decide` Update and of the `decide_signal` Signal."""

    gate: GateName
    decision: DecisionKind
    reviewer: str = Field(min_length=1, max_length=200)
    comment: str = ""
    plan: list[str] | None = Field(default=None, description="Edited sub-questions (plan gate).")
    version: int | None = Field(
        default=None,
        description="The gate_version the reviewer saw (Progress.gate_version); a decision on an "
                    "older version is refused. None skips the check.",
    )


class DecisionOutcome(Model):
    gate: GateName
    decision: DecisionKind
    reviewer: str
    accepted: bool
    message: str = ""
    version: int | None = Field(default=None, description="The gate_version the decision closed.")


class Progress(Model):
    stage: str
    sub_questions_total: int = 0
    sub_questions_done: int = 0
    sources_found: int = 0
    sources_parsed: int = 0
    sources_failed: int = 0
    chunks_indexed: int = 0
    llm_calls: int = 0
    revision_round: int = 0
    open_gate: GateName | None = None
    gate_deadline: datetime | None = None
    plan: list[str] = Field(default_factory=list)
    decisions: list[DecisionRecord] = Field(default_factory=list)
    gate_version: int = Field(
        default=0, description="Version of the plan/report shown at the open (or last) gate; "
                               "goes up each time a gate opens. Send it as GateDecision.version.")
    gate_opened_at: datetime | None = None
    reminders_sent: int = 0
    escalated: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    citations_dropped: int = 0
    claims_unsupported: int = 0
    budget_usd: float | None = None
    max_llm_calls: int | None = None
    budget_stop: str | None = Field(default=None, description="Why the run is stopped by its budget.")
    parked_until: datetime | None = Field(default=None, description="Parked on a provider quota error.")
    question: str = Field(default="", description="The run's question (empty from older workers).")
    report_key: str | None = Field(
        default=None, description="Artifact key of the latest aggregated report: the one under review "
                                  "at the report gate (`deepsci show`).")


class BudgetRaise(Model):
    """Payload of the `raise_budget` Update: new limits (None keeps a limit as it is)."""

    budget_usd: float | None = Field(default=None, gt=0, le=MAX_BUDGET_USD, allow_inf_nan=False)
    max_llm_calls: int | None = Field(default=None, ge=1, le=MAX_LLM_CALLS)
    reviewer: str = Field(default="cli", min_length=1, max_length=200)


class BudgetState(Model):
    budget_usd: float | None
    max_llm_calls: int | None
    cost_usd: float
    llm_calls: int
    stopped: bool = False
    message: str = ""


# ---------------------------------------------------------------- activities


class SubQuestion(Model):
    id: str
    text: str


class PlanInput(Model):
    idempotency_key: str
    question: str
    max_sub_questions: int


class Plan(Model):
    sub_questions: list[SubQuestion]
    mode: str
    usage: LlmUsage = Field(default_factory=LlmUsage)


class SearchInput(Model):
    idempotency_key: str
    query: str
    corpus: str | None
    providers: list[str]
    limit: int


class SearchHit(Model):
    uri: str
    title: str
    score: float
    snippet: str = ""


class SearchResult(Model):
    hits: list[SearchHit]


class FetchParseInput(Model):
    idempotency_key: str
    uri: str
    title: str = ""
    run_id: str = Field(default="", description="The research run's workflow id; '' in inputs "
                                                "scheduled before it was added.")


class IndexInput(Model):
    idempotency_key: str
    content_hashes: list[str]


class IndexResult(Model):
    chunks_indexed: int
    chunks_by_hash: dict[str, int] = Field(default_factory=dict)


class EvidenceRef(Model):
    """A pointer to one indexed chunk, with a short snippet for the Web UI."""

    point_id: str
    source_id: str
    content_hash: str
    locator: str
    score: float
    snippet: str


class RetrieveInput(Model):
    idempotency_key: str
    query: str
    content_hashes: list[str]
    limit: int


class RetrieveResult(Model):
    evidence: list[EvidenceRef]


class InvestigateInput(Model):
    run_id: str
    question: str
    sub_question: SubQuestion
    corpus: str | None
    providers: list[str]
    max_sources: int
    evidence_limit: int


class InvestigateResult(Model):
    sub_question_id: str
    sources: list[SourceRecord]
    evidence: list[EvidenceRef]
    chunks_by_hash: dict[str, int] = Field(default_factory=dict)


class DraftInput(Model):
    idempotency_key: str
    question: str
    sub_question: SubQuestion
    evidence: list[EvidenceRef]
    revision_round: int = 0
    notes: list[str] = Field(default_factory=list)


class DraftRef(Model):
    key: str
    sub_question_id: str
    sentences: int
    usage: LlmUsage = Field(default_factory=LlmUsage)
    citations_dropped: int = 0
    claims_unsupported: int = Field(default=0, description="Claims dropped because their quote does not "
                                                           "support them.")
    failed: str = Field(default="", description="Why drafting failed for good; then there is no artifact.")
    sub_question: str = Field(default="", description="The sub-question's text, set when ``failed`` is.")


class CritiqueIssue(Model):
    sub_question_id: str
    kind: IssueKind
    detail: str


class CritiqueInput(Model):
    idempotency_key: str
    question: str
    drafts: list[DraftRef]
    reviewer_comment: str = ""


class Critique(Model):
    issues: list[CritiqueIssue]
    usage: LlmUsage = Field(default_factory=LlmUsage)


class AggregateInput(Model):
    idempotency_key: str
    workflow_id: str
    question: str
    drafts: list[DraftRef]
    sources: list[SourceRecord]
    partial: bool = Field(default=False, description="Render what is drafted so far, without a model call.")
    no_model: bool = Field(default=False, description="Render deterministically: the model summary failed.")
    degraded: list[Degradation] = Field(default_factory=list, description="Listed in the report for its reader.")


class ReportRef(Model):
    key: str
    mode: str
    chars: int
    citations: list[Citation]
    summary: str
    usage: LlmUsage = Field(default_factory=LlmUsage)


NoticeKind = Literal["reminder", "escalation", "gate_opened", "decided"]


class NotifyInput(Model):
    """A notification about a gate: opened (the Slack message with buttons), reminder and
    escalation (thread replies), decided (the message edited to show the outcome)."""

    idempotency_key: str
    workflow_id: str
    gate: GateName
    version: int
    kind: NoticeKind
    recipients: list[str] = Field(default_factory=list, description="Empty: the run's reviewers.")
    message: str = ""
    deadline: datetime | None = None
    question: str = ""
    plan: list[str] = Field(default_factory=list, description="The plan shown (plan gate).")
    summary: str = Field(default="", description="The report summary shown (report gate).")
    sources: list[str] = Field(default_factory=list, description="'title - uri' of cited sources.")
    decision: DecisionRecord | None = Field(default=None, description="Set on kind decided.")


class NotifyResult(Model):
    key: str
    first_time: bool


class PublishInput(Model):
    idempotency_key: str
    workflow_id: str
    report_key: str
    result: ResearchResult


class PublishResult(Model):
    path_markdown: str
    path_json: str
    first_time: bool
