"""Render drafted sections into the final Markdown report with globally numbered citations."""

from __future__ import annotations

from deepsci.claims import UNSUPPORTED
from deepsci.contracts import Citation, SourceRecord
from deepsci.engine.offline import FACETS, NO_ANSWER, SECTION_SENTENCES

__all__ = ["render_report", "section_title", "ENGINE_NOTE", "report_document"]

ENGINE_NOTE = {
    "offline": "Written by the offline extractive engine: every sentence below is quoted verbatim "
    "from the cited source; nothing is paraphrased or invented.",
}


MODEL_NOTE = ("Written by {mode}: every claim cites a passage that was checked to appear verbatim in the "
              "cited source and to support the claim; claims whose quote did not check out, or did not "
              "support them, were dropped.")
UNSUPPORTED_NOTE = ("_{n} drafted claim{s} left out: the quoted passage, though verbatim in its source, "
                    "does not support what the claim says._")
PARTIAL_NOTE = ("_Partial report: the run stopped at its budget before finishing; sections not drafted "
                "yet are missing._")


def section_title(sub_question: str, question: str) -> str:
    """A heading a reader would write: the facet of an offline facet question ("Failure modes and
    risks", not "Failure modes and risks: <the question>?"), "Overview" for the question itself."""
    text = sub_question.strip()
    head, sep, rest = text.partition(": ")
    if sep and head in FACETS:
        return head
    if text.rstrip("?").strip().lower() == question.rstrip("?").strip().lower():
        return "Overview"
    return text


def render_report(
    question: str, mode: str, drafts: list[dict], sources: list[SourceRecord], *,
    summary: list[tuple[str, list[int]]] | None = None, partial: bool = False,
    degraded: list[dict] | None = None,
) -> tuple[str, list[Citation]]:
    """Markdown and numbered citations. A drafted sentence shows its claim ``text`` (model mode)
    or the quote itself (offline); ``summary`` (text, citation numbers) replaces the default (each
    section's first sentence).

    Each citation (``n``) keeps its verified quote; the Markdown cites the *source* (``ref``: one
    reference per document, its locators listed under it) and, when the claim is not the quote
    itself, a footnote with the quote beside the claim."""
    citations: list[Citation] = []
    by_quote: dict[tuple[str, str], int] = {}
    refs: dict[str, int] = {}  # source id -> reference number, in order of first citation
    section_of: dict[int, int] = {}  # citation number -> index of the section that shows it
    note = ENGINE_NOTE.get(mode, MODEL_NOTE.format(mode=mode))
    lines = [f"# {question}", "", f"_Mode: {mode}. {note}_", ""]
    if partial:
        lines += [PARTIAL_NOTE, ""]
    unsupported = sum(1 for d in drafts for x in d.get("dropped", []) if x.get("reason") == UNSUPPORTED)
    if unsupported:  # counted, not shown: a claim its quote does not support may be a planted one
        lines += [UNSUPPORTED_NOTE.format(n=unsupported, s="" if unsupported == 1 else "s"), ""]
    first: list[str] = []
    sections: list[dict] = []  # title, sentences, also (merged sub-questions), empty (what is missing)

    def marker(c: Citation) -> str:
        return f"[{c.ref}]" + (f"[^{c.n}]" if c.claim else "")

    for d in drafts:
        title = section_title(d["sub_question"]["text"], question)
        sentences, repeated = [], []
        for s in d["sentences"]:
            key = (s["content_hash"], s["quote"])
            if key in by_quote:  # already quoted in an earlier section: do not repeat it
                repeated.append(by_quote[key])
                continue
            n = len(citations) + 1
            by_quote[key] = n
            source_id = s["content_hash"][:16]
            ref = refs.setdefault(source_id, len(refs) + 1)
            text = s.get("text") or s["quote"]
            c = Citation(n=n, source_id=source_id, title=s["title"], uri=s["uri"], locator=s["locator"],
                         quote=s["quote"], ref=ref, claim=text if text != s["quote"] else "")
            citations.append(c)
            section_of[n] = len(sections)
            sentences.append(f"{text} {marker(c)}")
            if len(sentences) >= SECTION_SENTENCES:
                break
        if sentences:
            sections.append({"title": title, "sentences": sentences, "also": []})
            first.append(f"- {sentences[0]}")
        elif d.get("failed"):
            sections.append({"title": title, "empty": f"No supported answer: drafting this section failed "
                                                      f"({d['failed'][:200]})."})
        elif repeated:  # its evidence is what an earlier section quotes: merge it there
            sections[section_of[repeated[0]]]["also"].append(d["sub_question"]["text"])
        else:
            sections.append({"title": title, "empty": f"{NO_ANSWER} No passage in the searched sources "
                                                      f"addresses: {d['sub_question']['text']}"})
    lines += ["## Summary", ""]
    if summary:
        by_n = {c.n: c for c in citations}
        lines += [f"- {text} " + "".join(dict.fromkeys(marker(by_n[n]) for n in ns if n in by_n))
                  for text, ns in summary]
    else:
        lines += first or [f"{NO_ANSWER} No evidence in the searched sources addresses the question."]
    lines += [""]
    for i, sec in enumerate(sections, start=1):
        lines += [f"## {i}. {sec['title']}", ""]
        if sec.get("empty"):
            lines += [f"> {sec['empty']}", ""]
            continue
        lines += [" ".join(sec["sentences"]), ""]
        if sec["also"]:
            lines += ["_This also answers: " + "; ".join(sec["also"]) + "_", ""]
    if degraded:  # the reader learns which steps the run went on without
        lines += ["## What degraded", ""]
        lines += [f"- {x['step']}{' ' + x['sub_question_id'] if x.get('sub_question_id') else ''}: "
                  f"{x.get('fallback') or 'skipped'} ({x['reason'][:200]})" for x in degraded]
        lines += [""]
    lines += ["## References", ""]
    for source_id, ref in refs.items():
        cited = [c for c in citations if c.source_id == source_id]
        lines.append(f"{ref}. {cited[0].title} - <{cited[0].uri}>")
        locators = list(dict.fromkeys(c.locator for c in cited if c.locator))
        if locators:
            lines.append(f"   - {', '.join(locators)}")
    footnotes = [c for c in citations if c.claim]
    if footnotes:  # the verified quote beside each claim that paraphrases it
        lines += [""] + [f'[^{c.n}]: "{c.quote}" ({c.title}, {c.locator})' for c in footnotes]
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
