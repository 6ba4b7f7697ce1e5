"""A run over 100+ sources keeps every execution's history small: under 2 MB and 2,000 events,
no payload over 256 KB (the claim check at scale)."""

from __future__ import annotations

from deepsci.contracts import ResearchRequest
from tests.helpers import payloads, start_run

GROUPS = {
    "alpha": "widget calibration drift",
    "bravo": "gadget thermal throttling",
    "charlie": "sprocket lubrication schedule",
    "delta": "gizmo firmware rollback",
    "echo": "doohickey battery recall",
}


def _corpus(root):
    for group, topic in GROUPS.items():
        for i in range(25):
            (root / f"{group}-{topic.replace(' ', '-')}-{i:02d}.md").write_text(
                f"# {group.title()} {topic} report {i}\n\n"
                f"The {group} {topic} study number {i} measured {i * 7 + 3} incidents in quarter {i % 4 + 1}. "
                f"Engineers traced the {topic} in {group} units to supplier batch {i * 13 % 97}. "
                f"The recommended fix for {group} {topic} is documented in note {i}.\n")


async def test_a_hundred_sources_keep_histories_small(env, worker, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _corpus(corpus)
    question = " ".join(f"What causes {g} {t}?" for g, t in GROUPS.items())
    req = ResearchRequest(question=question, corpus=str(corpus), auto_approve=True, max_sub_questions=6,
                          max_sources_per_sub_question=25, max_revision_rounds=0)
    handle = await start_run(env.client, worker, req)
    result = await handle.result()
    assert result.status == "published"
    assert result.stats.sources_parsed >= 100, result.stats

    ids = [handle.id] + [f"{handle.id}/investigate/sq{i}" for i in range(1, 7)]
    for wid in ids:
        history = await env.client.get_workflow_handle(wid).fetch_history()
        size = len(history.to_json())
        assert size < 2 * 1024 * 1024, (wid, size)
        assert len(history.events) < 2000, (wid, len(history.events))
        biggest = max(p.ByteSize() for e in history.events for p in payloads(e))
        assert biggest < 256 * 1024, (wid, biggest)
        print(f"history {wid}: {len(history.events)} events, {size} bytes JSON, largest payload {biggest} B")
