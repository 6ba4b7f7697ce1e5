"""`deepsci eval`: run every dataset question through the real pipeline and score the reports
(the scores themselves are pure functions in evals/scoring.py). A dataset may pin run options in
``"request"`` (ResearchRequest fields, e.g. ``{"max_sub_questions": 1}``); the default is the
model's defaults."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from deepsci.contracts import ResearchRequest
from deepsci.settings import Settings
from deepsci.store import ArtifactStore
from deepsci.temporal_client import connect
from evals.scoring import dataset_corpus, failed_row, load_dataset, score_question, summarize
from starter.runs import report_json, start_or_attach

__all__ = ["run_dataset", "print_table"]


async def run_dataset(settings: Settings, dataset: Path, concurrency: int = 3,
                      progress: bool = True, limit: int | None = None) -> dict:
    """Run the dataset's questions (the first ``limit`` of them) and score them; a run that fails
    is scored as a failure, the others go on."""
    from rich.progress import Progress

    data = load_dataset(dataset)
    questions = data["questions"][:limit] if limit else data["questions"]
    corpus = dataset_corpus(data)
    client = await connect(settings)
    store = ArtifactStore(settings.dsn)
    sem = asyncio.Semaphore(concurrency)
    rows: list[dict] = []
    batch = uuid.uuid4().hex[:6]  # an eval measures the code as it is now: always fresh runs

    def document_text(content_hash: str) -> str | None:
        doc = store.get_document(content_hash)
        return doc["text"] if doc else None

    async def one(q: dict, bar, task) -> None:
        req = ResearchRequest(question=q["question"], corpus=str(corpus) if corpus else None,
                              auto_approve=True, **data.get("request", {}))
        try:
            async with sem:
                started = await start_or_attach(client, settings, req,
                                                f"research-eval-{data['name']}-{batch}-{q['id']}")
                result = await started.handle.result()
            doc = await asyncio.to_thread(report_json, settings, result)
            rows.append(score_question(q, result, doc["report_markdown"], document_text))
        except Exception as exc:  # noqa: BLE001 - one failed run is a failed row, not a failed eval
            cause = exc
            while getattr(cause, "cause", None) is not None:  # the activity's own message, not "Workflow failed"
                cause = cause.cause  # type: ignore[attr-defined]
            rows.append(failed_row(q, f"{type(cause).__name__}: {cause}"))
        if bar is not None:
            bar.advance(task)

    if progress:
        with Progress() as bar:
            task = bar.add_task(f"eval {data['name']}", total=len(questions))
            await asyncio.gather(*(one(q, bar, task) for q in questions))
    else:
        await asyncio.gather(*(one(q, None, None) for q in questions))
    return summarize(data["name"], rows)


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
                  f"abstention on unanswerable {fmt(report['abstention'])}  failed runs {report['failed']}")
