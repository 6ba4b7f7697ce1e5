"""Eval runner: run every dataset question through the real pipeline and score the reports.

- source recall: share of a question's expected sources among the sources the run found;
- citation validity: share of citations whose quote is verbatim in the parsed text of its source;
- fact coverage: share of key facts present in the report (case and whitespace folded);
- unanswerable questions pass when the report cites nothing and says the sources do not answer.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from deepsci.contracts import ResearchRequest, ResearchResult
from deepsci.engine.offline import NO_ANSWER
from deepsci.settings import REPO_ROOT, Settings
from deepsci.store import ArtifactStore
from deepsci.temporal_client import connect
from deepsci.text import normalize_ws

__all__ = ["run_dataset", "score_question", "print_table"]


def _fold(text: str) -> str:
    return normalize_ws(text).lower()


def score_question(q: dict, result: ResearchResult, markdown: str, store: ArtifactStore) -> dict:
    found = {Path(s.uri).name for s in result.sources if s.status == "parsed"}
    expected = q.get("expected_sources", [])
    valid = 0
    for c in result.citations:
        src = next((s for s in result.sources if s.source_id == c.source_id and s.content_hash), None)
        doc = store.get_document(src.content_hash) if src else None
        valid += bool(doc and c.quote in doc["text"])
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


def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 3) if vals else None


async def run_dataset(settings: Settings, dataset: Path, concurrency: int = 3,
                      progress: bool = True) -> dict:
    from rich.progress import Progress

    from starter.runs import report_json, start_or_attach

    data = json.loads(dataset.read_text())
    corpus = (REPO_ROOT / data["corpus"]).resolve() if data.get("corpus") else None
    client = await connect(settings)
    store = ArtifactStore(settings.dsn)
    sem = asyncio.Semaphore(concurrency)
    rows: list[dict] = []
    batch = uuid.uuid4().hex[:6]  # an eval measures the code as it is now: always fresh runs

    async def one(q: dict, bar, task) -> None:
        req = ResearchRequest(question=q["question"], corpus=str(corpus) if corpus else None,
                              auto_approve=True)
        async with sem:
            started = await start_or_attach(client, settings, req,
                                            f"research-eval-{data['name']}-{batch}-{q['id']}")
            result = await started.handle.result()
        doc = await asyncio.to_thread(report_json, settings, result)
        rows.append(score_question(q, result, doc["report_markdown"], store))
        if bar is not None:
            bar.advance(task)

    if progress:
        with Progress() as bar:
            task = bar.add_task(f"eval {data['name']}", total=len(data["questions"]))
            await asyncio.gather(*(one(q, bar, task) for q in data["questions"]))
    else:
        await asyncio.gather(*(one(q, None, None) for q in data["questions"]))
    rows.sort(key=lambda r: r["id"])
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    return {
        "dataset": data["name"],
        "questions": len(rows),
        "source_recall": _mean([r["source_recall"] for r in answerable]),
        "citation_validity": _mean([r["citation_validity"] for r in rows]),
        "fact_coverage": _mean([r["fact_coverage"] for r in answerable]),
        "abstention": _mean([1.0 if r["abstained"] else 0.0 for r in unanswerable]),
        "rows": rows,
    }


def print_table(console, report: dict) -> None:
    from rich.table import Table

    table = Table(title=f"eval {report['dataset']} ({report['questions']} questions)")
    for col in ("id", "status", "source recall", "citation validity", "fact coverage", "citations"):
        table.add_column(col)

    def fmt(v):
        return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)

    for r in report["rows"]:
        cov = fmt(r["fact_coverage"]) if r["answerable"] else ("abstained" if r["abstained"] else "ANSWERED")
        table.add_row(r["id"], r["status"], fmt(r["source_recall"]), fmt(r["citation_validity"]), cov,
                      str(r["citations"]))
    console.print(table)
    console.print(f"source recall {fmt(report['source_recall'])}  citation validity "
                  f"{fmt(report['citation_validity'])}  fact coverage {fmt(report['fact_coverage'])}  "
                  f"abstention on unanswerable {fmt(report['abstention'])}")
