"""The offline engine: plans by decomposition, quotes verbatim, says when the sources do not answer."""

from __future__ import annotations

from deepsci.chunking import chunk_document, point_id
from deepsci.engine import offline
from deepsci.parsing import parse_document
from deepsci.text import sentence_spans
from tests.helpers import CORPUS

EVIDENCE = [
    ("p1", "Full jitter picks a random delay between zero and the current backoff ceiling. "
           "It spreads retries from many clients so they do not arrive together.", 0.8),
    ("p2", "A circuit breaker opens after five consecutive failures. The office kitchen closes at six.", 0.5),
]


def test_plan_splits_compound_questions_and_respects_the_limit():
    subs = offline.plan("What is jitter? Why does it matter for retries?", 3)
    assert subs == ["What is jitter? Why does it matter for retries?", "What is jitter?",
                    "Why does it matter for retries?"]
    assert len(offline.plan("How do retries work?", 5)) == 5
    assert offline.plan("How do retries work?", 1) == ["How do retries work?"]


def test_draft_quotes_relevant_sentences_verbatim():
    picked = offline.draft_section("How does full jitter spread retries?",
                                   "How does full jitter spread retries?", EVIDENCE)
    assert picked, "nothing selected"
    texts = {pid: text for pid, text, _ in EVIDENCE}
    for s in picked:
        assert s.quote in texts[s.point_id]
    assert all("kitchen" not in s.quote for s in picked)


def test_draft_returns_nothing_when_evidence_is_off_topic():
    assert offline.draft_section("What is the boiling point of ethyl acetate?",
                                 "What is the boiling point of ethyl acetate?", EVIDENCE) == []


def test_critique_flags_unsupported_and_uncovered():
    assert offline.check_section([], {}) == [("uncovered", "no evidence sentence addresses this sub-question")]
    issues = offline.check_section([{"point_id": "p1", "quote": "made up"}], {"p1": "real text"})
    assert ("unsupported" in {k for k, _ in issues}) and ("thin" in {k for k, _ in issues})


def test_chunks_are_exact_spans_and_point_ids_are_stable():
    path = CORPUS / "retries-backoff-and-jitter.md"
    doc = parse_document(path.read_bytes(), path.name, 10**7)
    chunks = chunk_document(doc.text, doc.segments, 900)
    assert len(chunks) > 2
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text and len(c.text) <= 900 + 400
    assert point_id("abc", 1, "m") == point_id("abc", 1, "m") != point_id("abc", 2, "m")


def test_sentence_spans_do_not_split_abbreviations_or_cross_headings():
    t = "# Title\nBody one (e.g. this). Next one!\n## Two\nTail"
    assert [t[s:e] for s, e in sentence_spans(t)] == [
        "# Title", "Body one (e.g. this).", "Next one!", "## Two", "Tail"]


def test_a_sentence_that_points_back_is_quoted_with_its_antecedent():
    chunk = ("Risk peaks when an agent combines private data, untrusted content and outbound access. "
             "This combination is called the lethal trifecta of prompt injection.")
    picked = offline.draft_section("What is the lethal trifecta?", "What is the lethal trifecta?",
                                   [("p", chunk, 0.5)])
    assert picked[0].quote == chunk


def test_a_short_sentence_is_quoted_with_the_one_before_it():
    chunk = ("When a task is retried it waits for a delay given by the default_retry_delay attribute. "
             "By default this is set to 3 minutes.\n\nOk.")
    picked = offline.draft_section("What is the default retry delay?", "What is the default retry delay?",
                                   [("p", chunk, 0.5)])
    quotes = [p.quote for p in picked]
    assert quotes == ["When a task is retried it waits for a delay given by the default_retry_delay attribute. "
                      "By default this is set to 3 minutes."]
