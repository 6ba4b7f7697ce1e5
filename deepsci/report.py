"""Render drafted sections into the final Markdown report with globally numbered citations."""

from __future__ import annotations

from deepsci.contracts import Citation, SourceRecord
from deepsci.engine.offline import NO_ANSWER, SECTION_SENTENCES

__all__ = ["render_report", "ENGINE_NOTE", "report_document"]

ENGINE_NOTE = {
    "offline": "Written by the offline extractive engine: every sentence below is quoted verbatim "
    "from the cited source; nothing is paraphrased or invented.",
}


MODEL_NOTE = ("Written by {mode}: every claim cites a passage that was checked to appear verbatim in the "
              "cited source; claims whose quote did not check out were dropped.")
PARTIAL_NOTE = ("_Partial report: the run stopped at its budget before finishing; sections not drafted "
                "yet are missing._")


def render_report(
    question: str, mode: str, drafts: list[dict], sources: list[SourceRecord], *,
    summary: list[str] | None = None, partial: bool = False,
) -> tuple[str, list[Citation]]:
    """Markdown and numbered citations. A drafted sentence shows its claim ``text`` (model mode)
    or the quote itself (offline); ``summary`` replaces the default (each section's first sentence)."""
    citations: list[Citation] = []
    by_quote: dict[tuple[str, str], int] = {}
    note = ENGINE_NOTE.get(mode, MODEL_NOTE.format(mode=mode))
    lines = [f"# {question}", "", f"_Mode: {mode}. {note}_", ""]
    if partial:
        lines += [PARTIAL_NOTE, ""]
    first: list[str] = []
    body: list[str] = []
    for i, d in enumerate(drafts, start=1):
        body += [f"## {i}. {d['sub_question']['text']}", ""]
        sentences = []
        for s in d["sentences"]:
            key = (s["content_hash"], s["quote"])
            if key in by_quote:  # already quoted in an earlier section: do not repeat it
                continue
            n = len(citations) + 1
            by_quote[key] = n
            citations.append(Citation(
                n=n, source_id=s["content_hash"][:16], title=s["title"], uri=s["uri"],
                locator=s["locator"], quote=s["quote"],
            ))
            sentences.append(f"{s.get('text') or s['quote']} [{n}]")
            if len(sentences) >= SECTION_SENTENCES:
                break
        if sentences:
            body += [" ".join(sentences), ""]
            first.append(f"- {sentences[0]}")
        elif d["sentences"]:
            body += ["_Covered by the evidence quoted in the sections above._", ""]
        else:
            body += [f"> {NO_ANSWER}", ""]
    lines += ["## Summary", ""]
    lines += summary or first or [f"{NO_ANSWER} No evidence in the searched sources addresses the question."]
    lines += [""] + body
    lines += ["## References", ""]
    for c in citations:
        lines.append(f"{c.n}. {c.title}, {c.locator} - <{c.uri}>")
    failed = [s for s in sources if s.status == "failed"]
    if failed:
        lines += ["", "## Sources that could not be read", ""]
        lines += [f"- {s.uri}: {s.error}" for s in failed]
    return "\n".join(lines).rstrip() + "\n", citations


def report_document(result: dict, markdown: str) -> dict:
    """The report contract printed by ``deepsci result --json``."""
    return {
        "workflow_id": result["workflow_id"],
        "status": result["status"],
        "question": result["question"],
        "mode": result["mode"],
        "report_markdown": markdown,
        "citations": result["citations"],
        "sources": [
            {k: s.get(k) for k in ("source_id", "uri", "title", "kind", "status", "error")}
            for s in result["sources"]
        ],
        "stats": result["stats"],
        "decisions": result.get("decisions", []),
    }
