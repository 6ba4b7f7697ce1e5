"""Redraft finished eval runs with two versions of the offline engine, on the evidence each run
really retrieved: a fast measure of a drafting change without running the dataset again.

    python bench/redraft.py DATASET_JSON RUN_ID_PREFIX [--base GIT_REV]

For every question whose run ``RUN_ID_PREFIX-<question id>`` is on the server (``deepsci eval``
names its runs ``research-eval-<dataset>-<batch>-<id>``), it reads each first-round ``draft``
activity's input from the history (sub-question, evidence point ids, notes), loads the chunks from
the artifact store, and drafts the section with ``deepsci/engine/offline.py`` as of ``--base``
(default HEAD) and as in the work tree. It prints, per version, the share of key facts present in
the union of the drafted quotes (the sections a report is made of; the report may show fewer).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from deepsci.engine import offline as current
from deepsci.settings import REPO_ROOT, get_settings
from deepsci.store import ArtifactStore
from deepsci.temporal_client import connect
from deepsci.text import normalize_ws


def _engine_at(rev: str):
    source = subprocess.run(["git", "show", f"{rev}:deepsci/engine/offline.py"], cwd=REPO_ROOT,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "offline_base.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("offline_base", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["offline_base"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


async def _draft_inputs(client, workflow_id: str) -> list[dict]:
    inputs = []
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        attrs = event.activity_task_scheduled_event_attributes
        if event.HasField("activity_task_scheduled_event_attributes") and attrs.activity_type.name == "draft":
            inp = json.loads(attrs.input.payloads[0].data)
            if inp.get("revision_round", 0) == 0:
                inputs.append(inp)
    return inputs


def _fold(text: str) -> str:
    return normalize_ws(text).lower()


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("prefix", help="run id without the question id, e.g. research-eval-celery_docs-edac0d")
    ap.add_argument("--base", default="HEAD")
    args = ap.parse_args()
    data = json.loads(Path(args.dataset).read_text())
    engines = {"base": _engine_at(args.base), "work tree": current}
    client = await connect(get_settings())
    store = ArtifactStore(get_settings().dsn)
    totals = {name: [0, 0] for name in engines}
    for q in data["questions"]:
        if not q["answerable"]:
            continue
        try:
            inputs = await _draft_inputs(client, f"{args.prefix}-{q['id']}")
        except Exception:  # noqa: BLE001 - a question whose run is not there is skipped
            continue
        if not inputs:
            continue
        row = []
        for name, engine in engines.items():
            quotes = []
            for inp in inputs:
                chunks = store.get_chunks([e["point_id"] for e in inp["evidence"]])
                evidence = [(e["point_id"], chunks[e["point_id"]]["text"], e["score"])
                            for e in inp["evidence"] if e["point_id"] in chunks]
                quotes += [s.quote for s in engine.draft_section(
                    inp["question"], inp["sub_question"]["text"], evidence, inp.get("notes", []),
                    max_sentences=engine.SECTION_SENTENCES * 2)]
            text = _fold(" ".join(quotes))
            hit = sum(_fold(f) in text for f in q["key_facts"])
            totals[name][0] += hit
            totals[name][1] += len(q["key_facts"])
            row.append(f"{name} {hit}/{len(q['key_facts'])}")
        print(q["id"], "  ".join(row))
    for name, (hit, n) in totals.items():
        print(f"{name}: key facts in drafted quotes {hit}/{n} = {hit / max(n, 1):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
