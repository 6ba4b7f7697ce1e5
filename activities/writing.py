"""Writing activities: draft one section, critique all sections, aggregate the cited report.

The model engine writes when a model is configured (deps.llm), the offline extractive engine
otherwise; a model's claims are checked against their quotes (deps.claims), the offline engine's
are the quotes themselves. Drafts and the report are artifacts in Postgres (claim check): the
workflow only sees keys, counts, usage and the citation list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import activity

from deepsci.contracts import (
    AggregateInput,
    Critique,
    CritiqueInput,
    CritiqueIssue,
    DraftInput,
    DraftRef,
    LlmUsage,
    ReportRef,
)
from deepsci.engine import offline
from deepsci.engine.model import ModelEngine
from deepsci.report import render_report

if TYPE_CHECKING:
    from activities.deps import Deps

__all__ = ["WritingActivities"]


class WritingActivities:
    def __init__(self, deps: Deps):
        self.deps = deps

    @property
    def _model(self) -> ModelEngine | None:
        return ModelEngine(self.deps.llm, self.deps.claims) if self.deps.llm else None

    @activity.defn(name="draft")
    def draft(self, inp: DraftInput) -> DraftRef:
        chunks = self.deps.store.get_chunks([e.point_id for e in inp.evidence])
        usage, dropped, unsupported = LlmUsage(), [], 0
        engine = self._model
        if engine is None:
            evidence = [(e.point_id, chunks[e.point_id]["text"], e.score)
                        for e in inp.evidence if e.point_id in chunks]
            # Ranked candidates beyond what one section shows, so aggregation can skip quotes an
            # earlier section already used and still say something new.
            picked = [{"point_id": s.point_id, "quote": s.quote} for s in offline.draft_section(
                inp.question, inp.sub_question.text, evidence, inp.notes,
                max_sentences=offline.SECTION_SENTENCES * 2)]
        else:
            res = engine.draft(inp.question, inp.sub_question.text,
                               [(e.point_id, chunks[e.point_id]) for e in inp.evidence if e.point_id in chunks],
                               inp.notes, inp.idempotency_key)
            picked, dropped, usage, unsupported = res.sentences, res.dropped, res.usage, res.unsupported
        sentences = []
        for s in picked:
            c = chunks[s["point_id"]]
            sentences.append({**s, "content_hash": c["content_hash"], "locator": c["locator"], "uri": c["uri"],
                              "title": c["title"]})
        body = {"sub_question": inp.sub_question.model_dump(), "sentences": sentences,
                "revision_round": inp.revision_round, "dropped": dropped}
        self.deps.store.put_artifact(inp.idempotency_key, "draft", body)
        return DraftRef(key=inp.idempotency_key, sub_question_id=inp.sub_question.id,
                        sentences=len(sentences), usage=usage,
                        citations_dropped=len(dropped) - unsupported, claims_unsupported=unsupported)

    @activity.defn(name="critique")
    def critique(self, inp: CritiqueInput) -> Critique:
        drafts = self._drafts(inp.drafts)
        ids = [s["point_id"] for d in drafts for s in d["sentences"]]
        chunks = self.deps.store.get_chunks(ids)
        texts = {pid: c["text"] for pid, c in chunks.items()}
        issues = []
        for ref, d in zip(inp.drafts, drafts, strict=True):
            for kind, detail in offline.check_section(d["sentences"], texts):
                issues.append(CritiqueIssue(sub_question_id=ref.sub_question_id, kind=kind, detail=detail))
            for x in d.get("dropped", []):
                issues.append(CritiqueIssue(sub_question_id=ref.sub_question_id, kind="dropped_citation",
                                            detail=f"citation dropped ({x['reason']}): {x['quote'][:120]}"))
            if inp.reviewer_comment:
                issues.append(CritiqueIssue(sub_question_id=ref.sub_question_id, kind="reviewer",
                                            detail=inp.reviewer_comment))
        usage = LlmUsage()
        engine = self._model
        if engine is not None:
            sections = [{"sub_question_id": ref.sub_question_id, "sub_question": d["sub_question"]["text"],
                         "claims": [s.get("text") or s["quote"] for s in d["sentences"]],
                         "dropped": len(d.get("dropped", []))} for ref, d in zip(inp.drafts, drafts, strict=True)]
            found, usage = engine.critique(inp.question, sections, inp.reviewer_comment, inp.idempotency_key)
            issues += [CritiqueIssue(sub_question_id=sq, kind="model", detail=p) for sq, p in found]
        return Critique(issues=issues, usage=usage)

    @activity.defn(name="aggregate")
    def aggregate(self, inp: AggregateInput) -> ReportRef:
        drafts = self._drafts(inp.drafts)
        model = self._model
        # A partial report, or one whose model summary failed, is rendered without a model call.
        engine = None if inp.partial or inp.no_model else model
        mode = model.mode if model else offline.MODE
        degraded = [d.model_dump() for d in inp.degraded]
        if inp.no_model:
            degraded.append({"step": "aggregate", "sub_question_id": "", "reason": "the model summary failed",
                             "fallback": "rendered without a model summary"})
        markdown, citations = render_report(inp.question, mode, drafts, inp.sources, partial=inp.partial,
                                            degraded=degraded)
        usage, summary_lines = LlmUsage(), None
        if engine is not None and citations:
            by_section = _numbered_claims(drafts, citations)
            points, _, usage = engine.summary(inp.question, by_section, {c.n for c in citations},
                                              inp.idempotency_key)
            if points:
                summary_lines = [text for text, _ in points]
                markdown, citations = render_report(inp.question, mode, drafts, inp.sources,
                                                    summary=points, degraded=degraded)
        body = {"markdown": markdown, "citations": [c.model_dump() for c in citations], "partial": inp.partial}
        self.deps.store.put_artifact(inp.idempotency_key, "report", body)
        if summary_lines:
            summary = summary_lines[0][:200]
        else:
            summary = citations[0].quote[:200] if citations else offline.NO_ANSWER
        return ReportRef(key=inp.idempotency_key, mode=mode, chars=len(markdown),
                         citations=citations, summary=summary, usage=usage)

    def _drafts(self, refs: list[DraftRef]) -> list[dict]:
        """Each draft's artifact; a draft that failed for good has none and reads as an empty section."""
        return [{"sub_question": {"id": r.sub_question_id, "text": r.sub_question}, "sentences": [],
                 "dropped": [], "failed": r.failed} if r.failed else self.deps.store.get_artifact(r.key)
                for r in refs]


def _numbered_claims(drafts: list[dict], citations) -> list[dict]:
    """Each section's claims with the citation number the report gave them, for the summary prompt."""
    n_by_quote = {(c.source_id, c.quote): c.n for c in citations}
    sections = []
    for i, d in enumerate(drafts, start=1):
        claims = []
        for s in d["sentences"]:
            n = n_by_quote.get((s["content_hash"][:16], s["quote"]))
            if n is not None:
                claims.append((n, s.get("text") or s["quote"]))
        sections.append({"id": f"S{i}", "sub_question": d["sub_question"]["text"], "claims": claims})
    return sections
