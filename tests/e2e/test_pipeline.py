"""A full run on the sample corpus: cited report, verbatim quotes, expected sources, one publish."""

from __future__ import annotations

import json
from pathlib import Path

from deepsci.contracts import ResearchRequest
from starter.runs import report_json
from tests.helpers import CORPUS, start_run

DATASET = json.loads((CORPUS.parent / "datasets" / "agent_reliability.json").read_text())


async def test_full_run_cites_sources_verbatim(env, worker, deps, settings):
    q = next(x for x in DATASET["questions"] if x["answerable"] and len(x["expected_sources"]) == 1)
    req = ResearchRequest(question=q["question"], corpus=str(CORPUS), auto_approve=True)
    handle = await start_run(env.client, worker, req)
    result = await handle.result()

    assert result.status == "published"
    assert result.mode == "offline"
    assert result.citations, "the report cites nothing"
    found = {Path(s.uri).name for s in result.sources}
    assert set(q["expected_sources"]) <= found

    for c in result.citations:
        doc = deps.store.get_document(next(s.content_hash for s in result.sources if s.source_id == c.source_id))
        assert c.quote in doc["text"], f"citation {c.n} is not verbatim in {c.uri}"

    doc = report_json(settings, result)
    assert set(doc) >= {"workflow_id", "status", "question", "mode", "report_markdown", "citations",
                        "sources", "stats"}
    assert set(doc["stats"]) >= {"sources_found", "sources_parsed", "sources_failed", "chunks_indexed",
                                 "llm_calls", "duration_s"}
    assert "[1]" in doc["report_markdown"] and "Mode: offline" in doc["report_markdown"]
    assert Path(result.report_path).read_text() == doc["report_markdown"]
    assert deps.store.ledger_count(f"{result.workflow_id}/publish") == 1
    decisions = [(d.gate, d.reviewer) for d in result.decisions]
    assert decisions == [("plan", "auto"), ("report", "auto")]


async def test_unanswerable_question_says_so(env, worker):
    q = next(x for x in DATASET["questions"] if not x["answerable"])
    req = ResearchRequest(question=q["question"], corpus=str(CORPUS), auto_approve=True,
                          max_sub_questions=2)
    result = await (await start_run(env.client, worker, req)).result()
    assert result.status == "published"
    assert result.citations == []
    assert "The sources do not answer this." in Path(result.report_path).read_text()
