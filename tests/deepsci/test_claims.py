"""Claim support (deepsci/claims.py) on the committed labelled set, with the real local embedding
model: accuracy above the measured floor, the hostile claim of issue 10 dropped, and a claim that
is its own quote passing without an embedding."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
from temporalio.exceptions import ApplicationError

from deepsci.claims import UNSUPPORTED, ClaimChecker, judge, lexical
from deepsci.embedding import LocalE5Embedder
from deepsci.parsing import parse_document
from deepsci.text import quote_in
from tests.helpers import CORPUS

LABELLED = Path(__file__).parents[2] / "evals" / "claims" / "labelled.jsonl"
REALWORLD_HTML = Path(__file__).parents[2] / ".venv" / "realworld" / "html"
# Measured with evals/calibrate_claims.py at the constants of deepsci/claims.py: accuracy 0.960,
# 50 of 51 unsupported claims dropped, 47 of 50 supported kept (docs/models.md#claim-support). The
# floors leave room for another CPU's rounding; keeping every claim scores 0.495.
MIN_ACCURACY = 0.92
MIN_DROP_RECALL = 0.9
MIN_KEEP_RECALL = 0.9

HOSTILE = ("Exponential backoff was withdrawn by the IETF as unsafe.",
           "Exponential backoff multiplies the waiting period after every failed attempt so that a struggling "
           "dependency receives progressively less traffic.")


def pairs() -> list[dict]:
    return [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def checker() -> ClaimChecker:
    return ClaimChecker(LocalE5Embedder())


class NoEmbedding:
    def passages(self, texts: list[str]) -> np.ndarray:
        raise AssertionError(f"embedded {texts!r}: a claim equal to its quote needs no embedding")


def test_the_labelled_set_is_balanced_and_quotes_real_documents():
    rows = pairs()
    assert len(rows) >= 80
    supported = sum(r["supported"] for r in rows)
    # balanced, so that a check that keeps (or drops) everything scores far below the floor
    assert 0.4 <= supported / len(rows) <= 0.6
    assert all(r["note"] for r in rows)
    docs = [p for p in sorted(CORPUS.iterdir()) if p.suffix in (".md", ".html")]
    texts = [parse_document(p.read_bytes(), p.as_uri(), 10_000_000).text for p in docs]
    for p in sorted(REALWORLD_HTML.glob("*.html")):
        with contextlib.suppress(ApplicationError):  # some pages have no main text (BadDocument)
            texts.append(parse_document(p.read_bytes(), p.as_uri(), 10_000_000).text)
    missing = [r["quote"] for r in rows if not any(quote_in(r["quote"], t) for t in texts)]
    assert not missing, missing
    assert sum(1 for r in rows if "real-world" in r["note"]) >= 15


def test_the_scorer_beats_its_measured_floor_on_the_labelled_set(checker):
    rows = pairs()
    verdicts = checker.check([(r["claim"], r["quote"]) for r in rows])
    got = [v.supported for v in verdicts]
    want = [r["supported"] for r in rows]
    accuracy = sum(g == w for g, w in zip(got, want, strict=True)) / len(rows)
    drop_recall = sum(not g for g, w in zip(got, want, strict=True) if not w) / want.count(False)
    keep_recall = sum(g for g, w in zip(got, want, strict=True) if w) / want.count(True)
    wrong = [(r["note"], r["claim"], v.score) for r, v in zip(rows, verdicts, strict=True)
             if v.supported != r["supported"]]
    assert accuracy >= MIN_ACCURACY, wrong
    assert drop_recall >= MIN_DROP_RECALL and keep_recall >= MIN_KEEP_RECALL, wrong
    assert all(v.reason == UNSUPPORTED for v in verdicts if not v.supported)


def test_the_hostile_claim_citing_a_real_sentence_is_not_supported(checker):
    claim, quote = HOSTILE
    [verdict] = checker.check([(claim, quote)])
    assert not verdict.supported and verdict.reason == UNSUPPORTED
    [fine] = checker.check([("Exponential backoff makes the wait longer after each failed attempt, so a "
                             "struggling dependency gets less traffic.", quote)])
    assert fine.supported


def test_a_claim_that_is_its_quote_always_passes_and_embeds_nothing():
    rows = pairs()
    same = [(r["quote"], r["quote"]) for r in rows] + [(f'"{r["quote"]}"', r["quote"]) for r in rows[:5]]
    assert all(v.supported and v.similarity is None for v in ClaimChecker(NoEmbedding()).check(same))


def test_numbers_and_negation_the_quote_does_not_have_count_against_the_claim():
    quote = "The reference configuration retains ledger entries for 24 hours."
    assert lexical("Ledger entries are kept for 24 hours.", quote).numbers_missing == 0
    assert lexical("Ledger entries are kept for 7 days.", quote).numbers_missing == 1
    assert lexical("Ledger entries are not retained.", quote).negation_mismatch
    assert lexical("The policy allows five attempts.", "The policy allows at most 5 attempts.").numbers_missing == 0
    same_sim = 0.93  # what the embedding gives both: only the number differs
    assert judge("Ledger entries are retained for 24 hours.", quote, same_sim).supported
    assert not judge("Ledger entries are retained for 72 hours.", quote, same_sim).supported
