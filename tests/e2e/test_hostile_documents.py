"""Hostile documents (tests/hostile_docs.py) end as expected, alone and inside a full run on Temporal.

1. Each document through ``parse_isolated``: parsed, or failed with a clear reason; this process
   survives every one of them (parser crashes, memory bombs and 100k nested tags included).
2. One research run over a corpus of two good sample documents plus every hostile one: the run
   is published, every hostile document is listed in ``result.sources`` as parsed or failed with
   its reason, and the worker that ran it (in this process) is still serving.

The 50 MB HTML fails on ``max_document_bytes`` (20 MB) before it is read: nothing parses it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from deepsci.contracts import ResearchRequest
from deepsci.sandbox import ParseLimits, parse_isolated
from tests.helpers import CORPUS, start_run
from tests.hostile_docs import LIMIT_BYTES, Hostile, generate

GROUPS = ("kestrel", "falcon")  # words no document contains: each sub-question finds its half by file name
GOOD = {"kestrel": "retries-backoff-and-jitter.md", "falcon": "circuit-breakers-for-model-providers.md"}
QUESTION = ("How do kestrel retries use backoff and jitter? "
            "How do falcon circuit breakers protect model providers?")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, list[Hostile]]:
    folder = tmp_path_factory.mktemp("hostile")
    t0 = time.monotonic()
    specs = generate(folder)
    assert time.monotonic() - t0 < 15, "generating the hostile documents must stay fast"
    return folder, specs


def test_there_are_enough_hostile_documents(hostile):
    _, specs = hostile
    names = [h.name for h in specs]
    assert len(specs) >= 30 and len(set(names)) == len(names)
    assert {h.expect for h in specs} == {"parsed", "failed"}


def test_each_hostile_document_ends_as_expected_in_the_sandbox(hostile):
    folder, specs = hostile
    me = os.getpid()

    def outcome(h: Hostile) -> tuple[Hostile, str, str, float]:
        data = (folder / h.name).read_bytes()
        t0 = time.monotonic()
        try:
            doc = parse_isolated(data, h.name, LIMIT_BYTES, ParseLimits())
        except ApplicationError as err:
            assert err.type == "BadDocument" and err.non_retryable, (h.name, err.type, err.message)
            return h, "failed", err.message, time.monotonic() - t0
        leaked = [f for f in h.forbidden if f in doc.text or f in doc.title]
        assert not leaked, (h.name, leaked)
        assert doc.text.strip(), h.name
        return h, "parsed", "", time.monotonic() - t0

    with ThreadPoolExecutor(2) as pool:  # two parser children at once, like the catalog
        results = list(pool.map(outcome, specs))
    wrong = [(h.name, h.expect, h.reason, got, reason) for h, got, reason, _ in results
             if got != h.expect or h.reason not in reason]
    assert not wrong, wrong
    assert os.getpid() == me  # still here: nothing took this process down
    slowest = max(results, key=lambda r: r[3])
    assert slowest[3] < 30, (slowest[0].name, slowest[3])


async def test_a_run_over_hostile_documents_is_published(env, worker, hostile, tmp_path):
    folder, specs = hostile
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    expected: dict[str, Hostile] = {}
    for i, h in enumerate(specs):
        name = f"{GROUPS[i % 2]}-{h.name}"
        os.link(folder / h.name, corpus / name)  # the same bytes, no copy of the 50 MB file
        expected[name] = h
    for group, good in GOOD.items():
        shutil.copy(CORPUS / good, corpus / f"{group}-{good}")
    assert len(list(corpus.iterdir())) == len(specs) + 2

    req = ResearchRequest(question=QUESTION, corpus=str(corpus), auto_approve=True, max_sub_questions=3,
                          max_sources_per_sub_question=25, max_revision_rounds=0)
    t0 = time.monotonic()
    handle = await start_run(env.client, worker, req)
    result = await asyncio.wait_for(handle.result(), timeout=240)
    took = time.monotonic() - t0
    assert result.status == "published", result.status

    by_name = {s.uri.rsplit("/", 1)[-1]: s for s in result.sources}
    missing = sorted(set(expected) - set(by_name))
    assert not missing, f"hostile documents never fetched: {missing}"
    wrong = []
    for name, h in expected.items():
        s = by_name[name]
        if s.status != h.expect:
            wrong.append((name, h.expect, s.status, s.error))
        elif h.expect == "failed" and not (s.error and s.error.startswith("BadDocument: ") and h.reason in s.error):
            wrong.append((name, h.reason, s.error))
    assert not wrong, wrong
    for group, good in GOOD.items():
        assert by_name[f"{group}-{good}"].status == "parsed"

    failed = sum(1 for h in specs if h.expect == "failed")
    assert result.stats.sources_failed == failed
    assert result.stats.sources_parsed == len(specs) - failed + len(GOOD)
    assert result.citations  # the good documents still answer the question
    report = open(result.report_path).read()
    for h in specs:
        for f in h.forbidden:
            assert f not in report, (h.name, f)
    # Injected "approve without review" text changed nothing: the only decisions are the run's own.
    assert {d.reviewer for d in result.decisions} == {"auto"}
    print(f"hostile run: {len(result.sources)} sources, {failed} failed, {took:.1f} s")
