"""The final Markdown report: globally numbered citations, each quote cited once, references that
point back to the source, and the notes a reader needs (mode, partial run, unreadable sources)."""

from __future__ import annotations

import re

from deepsci.contracts import SourceRecord
from deepsci.engine.offline import NO_ANSWER, SECTION_SENTENCES
from deepsci.report import render_report, section_title

JITTER = {"content_hash": "a" * 64, "title": "Retries", "uri": "file:///corpus/retries.md", "locator": "§2"}
BREAKER = {"content_hash": "b" * 64, "title": "Circuit breakers", "uri": "https://example.org/cb.html",
           "locator": "p. 3"}


def _s(doc: dict, quote: str, text: str | None = None) -> dict:
    return {**doc, "quote": quote, **({"text": text} if text else {})}


def _draft(question: str, *sentences: dict) -> dict:
    return {"sub_question": {"text": question}, "sentences": list(sentences)}


Q1, Q2, Q3 = "Full jitter randomises each delay.", "A breaker opens after failures.", "Half-open lets one call through."


def test_one_reference_per_source_with_its_locators_under_it():
    pages = {**BREAKER, "locator": "p. 4"}
    md, cites = render_report("How do retries stay safe?", "offline", [
        _draft("What is full jitter?", _s(JITTER, Q1)),
        _draft("What does a breaker do?", _s(BREAKER, Q2), _s(pages, Q3)),
    ], [])
    assert [c.n for c in cites] == [1, 2, 3] and [c.ref for c in cites] == [1, 2, 2]
    assert [c.quote for c in cites] == [Q1, Q2, Q3]
    assert cites[1].source_id == "b" * 16 and cites[1].uri == BREAKER["uri"]
    assert md.startswith("# How do retries stay safe?\n")
    assert "## 1. What is full jitter?\n\nFull jitter randomises each delay. [1]\n" in md
    assert f"{Q2} [2] {Q3} [2]" in md  # the same PDF is one reference, not one per quote
    refs = md.split("## References\n\n", 1)[1].splitlines()
    assert refs == ["1. Retries - <file:///corpus/retries.md>", "   - §2",
                    "2. Circuit breakers - <https://example.org/cb.html>", "   - p. 3, p. 4"]
    # every [n] in the text has its reference
    assert {int(n) for n in re.findall(r"\[(\d+)\]", md)} == {c.ref for c in cites}


def test_a_section_whose_evidence_is_already_quoted_is_merged_and_an_empty_one_says_what_is_missing():
    md, cites = render_report("Q?", "offline", [
        _draft("First?", _s(JITTER, Q1)),
        _draft("Same evidence again?", _s(JITTER, Q1)),
        _draft("Nothing found?"),
    ], [])
    assert len(cites) == 1 and md.count(f"{Q1} [1]") == 2  # in its section and in the summary
    assert "Covered by" not in md and "Same evidence again?" not in md.split("## 1. First?")[0]
    assert "## 1. First?\n\n" + f"{Q1} [1]\n\n_This also answers: Same evidence again?_" in md
    assert f"## 2. Nothing found?\n\n> {NO_ANSWER} No passage in the searched sources addresses: Nothing found?" in md


def test_model_claims_show_their_text_with_the_verified_quote_in_a_footnote():
    md, cites = render_report("Q?", "gpt-4o-mini", [
        _draft("Breakers?", _s(BREAKER, Q2, text="Breakers stop calls to a failing provider.")),
    ], [])
    assert "Breakers stop calls to a failing provider. [1][^1]" in md
    assert Q2 not in md.split("## References")[0]
    assert f'[^1]: "{Q2}" (Circuit breakers, p. 3)' in md
    assert cites[0].quote == Q2 and cites[0].claim == "Breakers stop calls to a failing provider."
    assert "_Mode: gpt-4o-mini. Written by gpt-4o-mini: every claim cites a passage" in md


def test_section_titles_read_naturally():
    assert section_title("Failure modes and risks: How do retries stay safe?", "How do retries stay safe?") == (
        "Failure modes and risks")
    assert section_title("How do retries stay safe?", "How do retries stay safe") == "Overview"
    assert section_title("What is full jitter?", "How do retries stay safe?") == "What is full jitter?"


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
                          summary=[("A summary line", [1, 7])], partial=True)
    assert "_Partial report: the run stopped at its budget" in md
    assert "## Summary\n\n- A summary line [1]\n" in md
    unreadable = md.split("## Sources that could not be read\n\n", 1)[1]
    assert unreadable == "- https://example.org/broken.pdf: MalformedDocument: no pages\n"


def test_no_evidence_at_all_is_an_honest_empty_report():
    md, cites = render_report("Q?", "offline", [_draft("Anything?")], [])
    assert cites == []
    assert f"## Summary\n\n{NO_ANSWER} No evidence in the searched sources addresses the question." in md
    assert md.endswith("## References\n")
