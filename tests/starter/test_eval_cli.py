"""`deepsci eval` as a user runs it: a two-question dataset through the real pipeline (offline
engine, dev server, real worker), scored and printed as JSON."""

from __future__ import annotations

import json

from deepsci.settings import REPO_ROOT
from tests.helpers import cli_env as _env
from tests.helpers import deepsci_cli as _deepsci


async def test_eval_runs_a_dataset_and_prints_its_scores(env, worker, settings, tmp_path):
    shipped = json.loads((REPO_ROOT / "evals" / "datasets" / "agent_reliability.json").read_text())
    picked = [q for q in shipped["questions"] if q["id"] in ("q01", "u01")]
    dataset = tmp_path / "tiny.json"
    dataset.write_text(json.dumps({"name": "tiny", "corpus": shipped["corpus"], "questions": picked,
                                   "request": {"max_sub_questions": 1, "max_revision_rounds": 0}}))

    code, out, err = await _deepsci(_env(env, settings, worker), "eval", str(dataset), "--json",
                                    "--concurrency", "2")

    assert code == 0, err
    report = json.loads(out)
    assert report["dataset"] == "tiny" and report["questions"] == 2
    rows = {r["id"]: r for r in report["rows"]}
    assert rows["q01"]["status"] == "published" and rows["q01"]["source_recall"] == 1.0
    assert rows["q01"]["citation_validity"] == 1.0  # the offline engine quotes verbatim
    assert rows["u01"]["abstained"] is True and report["abstention"] == 1.0


async def test_eval_of_a_missing_dataset_is_one_line(env, worker, settings, tmp_path):
    code, _, err = await _deepsci(_env(env, settings, worker), "eval", str(tmp_path / "nope.json"))
    assert code == 1 and err.startswith("error: dataset not found:") and "Traceback" not in err


# What the offline engine scores honestly on the shipped dataset's first questions (measured with
# this very command; see docs/evals.md): the gate fails CI when a change makes reports worse.
GATE = ("--limit", "4", "--min-recall", "0.75", "--min-facts", "0.5", "--min-validity", "1.0")


async def test_the_quality_gate_passes_on_the_sample_dataset(env, worker, settings):
    dataset = REPO_ROOT / "evals" / "datasets" / "agent_reliability.json"
    code, out, err = await _deepsci(_env(env, settings, worker), "eval", str(dataset), "--json",
                                    "--concurrency", "4", *GATE)
    report = json.loads(out)
    assert code == 0, (err, {k: report[k] for k in ("source_recall", "fact_coverage", "citation_validity")})
    assert report["questions"] == 4 and report["failed"] == 0 and report["gate"] == {"passed": True, "misses": []}


async def test_a_score_below_its_threshold_exits_1_with_the_reason(env, worker, settings, tmp_path):
    shipped = json.loads((REPO_ROOT / "evals" / "datasets" / "agent_reliability.json").read_text())
    dataset = tmp_path / "abstain.json"
    dataset.write_text(json.dumps({"name": "abstain", "corpus": shipped["corpus"],
                                   "questions": [q for q in shipped["questions"] if q["id"] == "u01"],
                                   "request": {"max_sub_questions": 1, "max_revision_rounds": 0}}))
    code, out, err = await _deepsci(_env(env, settings, worker), "eval", str(dataset), "--min-recall", "0.5")
    assert code == 1
    assert "eval below its thresholds: source recall n/a < --min-recall 0.5" in " ".join(err.split())
    assert "abstention on unanswerable 1.00" in out  # the table is printed before the verdict
