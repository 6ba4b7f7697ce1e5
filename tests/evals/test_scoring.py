"""Eval scores of one run's result, as `deepsci eval` reports them: source recall, citation
validity (quote verbatim in its source's parsed text), fact coverage and abstention."""

from __future__ import annotations

from pathlib import Path

from deepsci.contracts import Citation, ResearchResult, SourceRecord
from deepsci.engine.offline import NO_ANSWER
from evals.scoring import below_thresholds, dataset_corpus, failed_row, load_dataset, score_question, summarize

TEXTS = {"h-retry": "Use a base delay of 250 milliseconds and a multiplier of 2.",
         "h-jitter": "Full jitter spreads retries evenly."}


def _source(n: int, name: str, content_hash: str | None, status: str = "parsed") -> SourceRecord:
    return SourceRecord(source_id=f"s{n}", uri=f"/corpus/{name}", title=name, kind="md", status=status,
                        content_hash=content_hash)


def _cite(n: int, source_id: str, quote: str) -> Citation:
    return Citation(n=n, source_id=source_id, title="t", uri="u", locator="p1", quote=quote)


def test_an_answer_is_scored_on_sources_quotes_and_facts():
    q = {"id": "q01", "question": "?", "answerable": True,
         "expected_sources": ["retries.md", "breakers.md"],
         "key_facts": ["base delay of 250 milliseconds", "multiplier of 2", "cap of 30 seconds"]}
    result = ResearchResult(
        workflow_id="w", status="published", question="?", mode="offline",
        sources=[_source(1, "retries.md", "h-retry"), _source(2, "jitter.md", "h-jitter"),
                 _source(3, "breakers.md", None, status="failed")],
        citations=[_cite(1, "s1", "a base delay of 250 milliseconds"),
                   _cite(2, "s2", "Full jitter spreads retries evenly."),
                   _cite(3, "s2", "a quote the source never said")])
    markdown = "# Report\n\nUse a base delay of 250\n milliseconds and a MULTIPLIER of 2 [1]."

    row = score_question(q, result, markdown, TEXTS.get)

    assert row["source_recall"] == 0.5  # breakers.md failed to parse: not found
    assert row["citation_validity"] == 2 / 3
    assert row["fact_coverage"] == 2 / 3  # folded case and whitespace; the cap is missing
    assert "abstained" not in row


def test_an_unanswerable_question_passes_only_by_abstaining():
    q = {"id": "q30", "question": "?", "answerable": False, "expected_sources": [], "key_facts": []}
    abstained = ResearchResult(workflow_id="w", status="published", question="?", mode="offline")
    answered = abstained.model_copy(update={"citations": [_cite(1, "s1", "Full jitter")],
                                            "sources": [_source(1, "jitter.md", "h-jitter")]})

    row_a = score_question(q, abstained, f"# R\n\n{NO_ANSWER}", TEXTS.get)
    row_b = score_question(q, answered, "# R\n\nFull jitter [1].", TEXTS.get)
    assert row_a["abstained"] is True and row_b["abstained"] is False
    assert row_a["citation_validity"] is None and row_b["citation_validity"] == 1.0

    report = summarize("tiny", [row_b, row_a])
    assert report["questions"] == 2 and report["abstention"] == 0.5
    assert report["source_recall"] is None and report["citation_validity"] == 1.0
    assert [r["id"] for r in report["rows"]] == ["q30", "q30"]


def test_the_shipped_dataset_names_its_corpus_in_the_repository():
    data = load_dataset(Path(__file__).resolve().parents[2] / "evals" / "datasets" / "agent_reliability.json")
    corpus = dataset_corpus(data)
    assert corpus is not None and corpus.is_dir()
    for q in data["questions"]:
        for name in q.get("expected_sources", []):
            assert (corpus / name).is_file(), name


def test_a_failed_run_scores_zero_instead_of_vanishing_from_the_means():
    good = {"id": "q01", "answerable": True, "status": "published", "source_recall": 1.0,
            "citation_validity": 1.0, "fact_coverage": 1.0, "citations": 3, "duration_s": 1.0}
    q = {"id": "q02", "question": "?", "expected_sources": ["a.md"], "key_facts": ["x"]}
    report = summarize("d", [good, failed_row(q, "WorkflowFailureError:   boom\n  at step")])
    assert report["failed"] == 1 and report["source_recall"] == 0.5 and report["fact_coverage"] == 0.5
    assert report["rows"][1]["error"] == "WorkflowFailureError: boom at step"


def test_thresholds_name_each_score_that_misses_its_minimum():
    report = {"source_recall": 0.75, "fact_coverage": 0.5, "citation_validity": 1.0}
    assert below_thresholds(report, {"recall": 0.7, "facts": 0.6, "validity": 1.0}) == [
        "fact coverage 0.500 < --min-facts 0.6"]
    assert below_thresholds(report, {"recall": None, "facts": None, "validity": None}) == []
    # a score that could not be computed cannot pass a gate set on it
    assert below_thresholds({**report, "source_recall": None}, {"recall": 0.1}) == [
        "source recall n/a < --min-recall 0.1"]
