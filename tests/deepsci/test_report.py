"""The final Markdown report: globally numbered citations, each quote cited once, references that
point back to the source, and the notes a reader needs (mode, partial run, unreadable sources)."""

from __future__ import annotations

import re

from deepsci.contracts import SourceRecord
from deepsci.engine.offline import NO_ANSWER, SECTION_SENTENCES
from deepsci.report import render_report

JITTER = {"content_hash": "a" * 64, "title": "Retries", "uri": "file:///corpus/retries.md", "locator": "§2"}
BREAKER = {"content_hash": "b" * 64, "title": "Circuit breakers", "uri": "https://example.org/cb.html",
           "locator": "p. 3"}


def _s(doc: dict, quote: str, text: str | None = None) -> dict:
    return {**doc, "quote": quote, **({"text": text} if text else {})}


def _draft(question: str, *sentences: dict) -> dict:
    return {"sub_question": {"text": question}, "sentences": list(sentences)}


Q1, Q2, Q3 = "Full jitter randomises each delay.", "A breaker opens after failures.", "Half-open lets one call through."


def test_citations_are_numbered_across_sections_and_listed_as_references():
    md, cites = render_report("How do retries stay safe?", "offline", [
        _draft("What is full jitter?", _s(JITTER, Q1)),
        _draft("What does a breaker do?", _s(BREAKER, Q2), _s(BREAKER, Q3)),
    ], [])
    assert [c.n for c in cites] == [1, 2, 3]
    assert [c.quote for c in cites] == [Q1, Q2, Q3]
    assert cites[1].source_id == "b" * 16 and cites[1].uri == BREAKER["uri"]
    assert md.startswith("# How do retries stay safe?\n")
    assert "## 1. What is full jitter?\n\nFull jitter randomises each delay. [1]\n" in md
    assert f"{Q2} [2] {Q3} [3]" in md
    refs = md.split("## References\n\n", 1)[1].splitlines()
    assert refs[:3] == ["1. Retries, §2 - <file:///corpus/retries.md>",
                        "2. Circuit breakers, p. 3 - <https://example.org/cb.html>",
                        "3. Circuit breakers, p. 3 - <https://example.org/cb.html>"]
    # every [n] in the text has its reference
    assert {int(n) for n in re.findall(r"\[(\d+)\]", md)} == {c.n for c in cites}


def test_a_quote_is_cited_once_and_a_section_without_evidence_says_so():
    md, cites = render_report("Q?", "offline", [
        _draft("First?", _s(JITTER, Q1)),
        _draft("Same evidence again?", _s(JITTER, Q1)),
        _draft("Nothing found?"),
    ], [])
    assert len(cites) == 1 and md.count(f"{Q1} [1]") == 2  # in its section and in the summary
    assert "## 2. Same evidence again?\n\n_Covered by the evidence quoted in the sections above._" in md
    assert f"## 3. Nothing found?\n\n> {NO_ANSWER}" in md


def test_model_claims_show_their_text_and_cite_the_checked_quote():
    md, cites = render_report("Q?", "gpt-4o-mini", [
        _draft("Breakers?", _s(BREAKER, Q2, text="Breakers stop calls to a failing provider.")),
    ], [])
    assert "Breakers stop calls to a failing provider. [1]" in md and Q2 not in md.split("## References")[0]
    assert cites[0].quote == Q2
    assert "_Mode: gpt-4o-mini. Written by gpt-4o-mini: every claim cites a passage" in md


def test_sections_show_at_most_the_section_limit_of_quotes():
    quotes = [f"Sentence number {i} about jitter." for i in range(SECTION_SENTENCES + 3)]
    md, cites = render_report("Q?", "offline", [_draft("Many?", *[_s(JITTER, q) for q in quotes])], [])
    assert len(cites) == SECTION_SENTENCES
    assert quotes[SECTION_SENTENCES] not in md


def test_summary_partial_note_and_unreadable_sources():
    failed = SourceRecord(source_id="x", uri="https://example.org/broken.pdf", title="Broken", kind="pdf",
                          status="failed", error="MalformedDocument: no pages")
    parsed = SourceRecord(source_id="y", uri=JITTER["uri"], title="Retries", kind="md", status="parsed")
    md, _ = render_report("Q?", "offline", [_draft("Jitter?", _s(JITTER, Q1))], [failed, parsed],
                          summary=["- A summary line [1]"], partial=True)
    assert "_Partial report: the run stopped at its budget" in md
    assert "## Summary\n\n- A summary line [1]\n" in md
    unreadable = md.split("## Sources that could not be read\n\n", 1)[1]
    assert unreadable == "- https://example.org/broken.pdf: MalformedDocument: no pages\n"


def test_no_evidence_at_all_is_an_honest_empty_report():
    md, cites = render_report("Q?", "offline", [_draft("Anything?")], [])
    assert cites == []
    assert f"## Summary\n\n{NO_ANSWER} No evidence in the searched sources addresses the question." in md
    assert md.endswith("## References\n")
