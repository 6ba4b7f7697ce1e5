"""Eval datasets and scores, as pure functions over a run's result (the runs are driven by
`deepsci eval`, starter/eval_runs.py).

- source recall: share of a question's expected sources among the sources the run found;
- citation validity: share of citations whose quote is verbatim in the parsed text of its source;
- fact coverage: share of key facts present in the report (case and whitespace folded);
- unanswerable questions pass when the report cites nothing and says the sources do not answer;
- a run that failed scores zero on everything (it is a failure, not a missing row).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from deepsci.contracts import ResearchResult
from deepsci.engine.offline import NO_ANSWER
from deepsci.settings import REPO_ROOT
from deepsci.text import normalize_ws

__all__ = ["load_dataset", "dataset_corpus", "score_question", "failed_row", "summarize", "below_thresholds",
           "THRESHOLDS"]

# What `deepsci eval --min-...` gates on: option name -> the report's mean.
THRESHOLDS = {"recall": "source_recall", "facts": "fact_coverage", "validity": "citation_validity"}


def load_dataset(path: Path) -> dict:
    """The dataset JSON: ``name``, ``corpus`` (relative to the repository) and ``questions``."""
    return json.loads(path.read_text())


def dataset_corpus(data: dict) -> Path | None:
    return (REPO_ROOT / data["corpus"]).resolve() if data.get("corpus") else None


def _fold(text: str) -> str:
    return normalize_ws(text).lower()


def score_question(q: dict, result: ResearchResult, markdown: str,
                   document_text: Callable[[str], str | None]) -> dict:
    """One dataset question's row; ``document_text(content_hash)`` is the parsed text of a source."""
    found = {Path(s.uri).name for s in result.sources if s.status == "parsed"}
    expected = q.get("expected_sources", [])
    valid = 0
    for c in result.citations:
        src = next((s for s in result.sources if s.source_id == c.source_id and s.content_hash), None)
        text = document_text(src.content_hash) if src and src.content_hash else None
        valid += bool(text and c.quote in text)
    facts = q.get("key_facts", [])
    report = _fold(markdown)
    row = {
        "id": q["id"],
        "answerable": q.get("answerable", True),
        "status": result.status,
        "source_recall": (len(found & set(expected)) / len(expected)) if expected else None,
        "citation_validity": (valid / len(result.citations)) if result.citations else None,
        "fact_coverage": (sum(_fold(f) in report for f in facts) / len(facts)) if facts else None,
        "citations": len(result.citations),
        "duration_s": result.stats.duration_s,
    }
    if not row["answerable"]:
        row["abstained"] = not result.citations and NO_ANSWER.lower() in report
    return row


def failed_row(q: dict, error: str) -> dict:
    """The row of a question whose run did not finish: zero on every score it would have had."""
    answerable = q.get("answerable", True)
    row = {
        "id": q["id"], "answerable": answerable, "status": "failed",
        "source_recall": 0.0 if q.get("expected_sources") else None,
        "citation_validity": 0.0,
        "fact_coverage": 0.0 if q.get("key_facts") else None,
        "citations": 0, "duration_s": 0.0, "error": normalize_ws(error)[:300],
    }
    if not answerable:
        row["abstained"] = False
    return row


def below_thresholds(report: dict, minimums: dict[str, float | None]) -> list[str]:
    """One line per threshold the report misses (``minimums``: THRESHOLDS key -> minimum or None);
    a mean that could not be computed (no such questions) misses any threshold set on it."""
    misses = []
    for name, minimum in minimums.items():
        if minimum is None:
            continue
        value = report[THRESHOLDS[name]]
        if value is None or value < minimum:
            shown = "n/a" if value is None else f"{value:.3f}"
            misses.append(f"{THRESHOLDS[name].replace('_', ' ')} {shown} < --min-{name} {minimum:g}")
    return misses


def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 3) if vals else None


def summarize(name: str, rows: list[dict]) -> dict:
    """The eval report: means over the rows (recall and coverage over answerable questions only)."""
    rows = sorted(rows, key=lambda r: r["id"])
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    return {
        "dataset": name,
        "questions": len(rows),
        "source_recall": _mean([r["source_recall"] for r in answerable]),
        "citation_validity": _mean([r["citation_validity"] for r in rows]),
        "fact_coverage": _mean([r["fact_coverage"] for r in answerable]),
        "abstention": _mean([1.0 if r["abstained"] else 0.0 for r in unanswerable]),
        "failed": sum(r["status"] != "published" for r in rows),
        "rows": rows,
    }
