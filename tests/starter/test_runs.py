"""Run identity, failed sources and the claim check, on the real dev server."""

from __future__ import annotations

import shutil

from deepsci.contracts import ResearchRequest
from deepsci.settings import Settings
from starter.runs import start_or_attach, workflow_id_for
from tests.helpers import CORPUS, payloads, start_run


async def test_same_id_twice_is_one_run(env, worker, settings):
    s = Settings(**{**settings.model_dump(), "task_queue_prefix": worker})
    req = ResearchRequest(question="What is a circuit breaker half-open state?", corpus=str(CORPUS),
                          auto_approve=True, max_sub_questions=1)
    wid = workflow_id_for(req)
    assert wid.startswith("research-what-is-a-circuit-breaker-half-open") and wid == workflow_id_for(req)
    first = await start_or_attach(env.client, s, req, wid)
    second = await start_or_attach(env.client, s, req, wid)
    assert not first.attached and second.attached
    await first.handle.result()
    third = await start_or_attach(env.client, s, req, wid)  # finished: attach, do not run again
    assert third.attached
    assert (await third.handle.result()).status == "published"  # typed, like a fresh start
    runs = [w async for w in env.client.list_workflows(f"WorkflowId = '{wid}'")]
    assert len(runs) == 1
    assert workflow_id_for(req, "my run/1") == "research-my-run-1"


async def test_unreadable_documents_are_reported_and_the_run_completes(env, worker, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(CORPUS / "retries-backoff-and-jitter.md", corpus)
    (corpus / "retry-backoff-jitter-broken.pdf").write_bytes(b"%PDF-1.7\n%%truncated retry backoff")
    (corpus / "retry-backoff-empty.html").write_bytes(b"")
    req = ResearchRequest(question="How do retries use backoff and jitter?", corpus=str(corpus),
                          auto_approve=True, max_sub_questions=1)
    result = await (await start_run(env.client, worker, req)).result()
    assert result.status == "published"
    failed = {s.uri.rsplit("/", 1)[-1]: s.error for s in result.sources if s.status == "failed"}
    assert failed == {
        "retry-backoff-jitter-broken.pdf": "BadDocument: malformed PDF: Failed to open stream",
        "retry-backoff-empty.html": "BadDocument: empty document (0 bytes)",
    }
    assert result.stats.sources_failed == 2 and result.stats.sources_parsed == 1
    assert result.citations
    report = open(result.report_path).read()
    assert "Sources that could not be read" in report and "empty document" in report


async def test_history_carries_references_not_documents(env, worker):
    req = ResearchRequest(question="How should idempotency keys be derived for side effects?",
                          corpus=str(CORPUS), auto_approve=True, max_sub_questions=3,
                          max_sources_per_sub_question=6)
    handle = await start_run(env.client, worker, req)
    await handle.result()
    ids = [handle.id] + [f"{handle.id}/investigate/sq{i}" for i in (1, 2, 3)]
    biggest = 0
    for wid in ids:
        history = await env.client.get_workflow_handle(wid).fetch_history()
        for event in history.events:
            for payload in payloads(event):
                biggest = max(biggest, payload.ByteSize())
        assert len(history.to_json()) < 2 * 1024 * 1024
    assert 0 < biggest < 256 * 1024, biggest
