"""Writing activities: draft one section, critique all sections, aggregate the cited report.

Drafts and the report are artifacts in Postgres (claim check): the workflow only sees keys,
counts and the citation list.
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
    ReportRef,
)
from deepsci.engine import offline
from deepsci.report import render_report

if TYPE_CHECKING:
    from activities.deps import Deps

__all__ = ["WritingActivities"]


class WritingActivities:
    def __init__(self, deps: Deps):
        self.deps = deps

    @activity.defn(name="draft")
    def draft(self, inp: DraftInput) -> DraftRef:
        chunks = self.deps.store.get_chunks([e.point_id for e in inp.evidence])
        evidence = [
            (e.point_id, chunks[e.point_id]["text"], e.score)
            for e in inp.evidence if e.point_id in chunks
        ]
        # Ranked candidates beyond what one section shows, so aggregation can skip quotes an earlier
        # section already used and still say something new.
        picked = offline.draft_section(inp.question, inp.sub_question.text, evidence, inp.notes,
                                       max_sentences=offline.SECTION_SENTENCES * 2)
        sentences = []
        for s in picked:
            c = chunks[s.point_id]
            sentences.append({
                "point_id": s.point_id, "quote": s.quote, "content_hash": c["content_hash"],
                "locator": c["locator"], "uri": c["uri"], "title": c["title"],
            })
        body = {"sub_question": inp.sub_question.model_dump(), "sentences": sentences,
                "revision_round": inp.revision_round}
        self.deps.store.put_artifact(inp.idempotency_key, "draft", body)
        return DraftRef(key=inp.idempotency_key, sub_question_id=inp.sub_question.id,
                        sentences=len(sentences), answered=bool(sentences))

    @activity.defn(name="critique")
    def critique(self, inp: CritiqueInput) -> Critique:
        drafts = [self.deps.store.get_artifact(d.key) for d in inp.drafts]
        ids = [s["point_id"] for d in drafts for s in d["sentences"]]
        chunks = self.deps.store.get_chunks(ids)
        texts = {pid: c["text"] for pid, c in chunks.items()}
        issues = []
        for ref, d in zip(inp.drafts, drafts, strict=True):
            for kind, detail in offline.check_section(d["sentences"], texts):
                issues.append(CritiqueIssue(sub_question_id=ref.sub_question_id, kind=kind, detail=detail))
            if inp.reviewer_comment:
                issues.append(CritiqueIssue(sub_question_id=ref.sub_question_id, kind="reviewer",
                                            detail=inp.reviewer_comment))
        return Critique(issues=issues)

    @activity.defn(name="aggregate")
    def aggregate(self, inp: AggregateInput) -> ReportRef:
        drafts = [self.deps.store.get_artifact(d.key) for d in inp.drafts]
        markdown, citations = render_report(inp.question, offline.MODE, drafts, inp.sources)
        body = {"markdown": markdown, "citations": [c.model_dump() for c in citations]}
        self.deps.store.put_artifact(inp.idempotency_key, "report", body)
        summary = citations[0].quote[:200] if citations else offline.NO_ANSWER
        return ReportRef(key=inp.idempotency_key, mode=offline.MODE, chars=len(markdown),
                         citations=citations, summary=summary)


