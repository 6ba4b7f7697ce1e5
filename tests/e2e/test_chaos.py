"""Crashes, restarts and shutdown, on real processes: bench/chaos.py runs once for this module on its
own private stack (free ports, never 7233/8233/55432) with

* 2 SIGKILL trials: the worker is killed while a `fetch_parse` activity is pending, a new worker
  finishes the run. Runs have one sub-question, so nothing else is in flight then: fetch_parse
  heartbeats (30 s heartbeat timeout), the cheapest kill to recover from; a kill during an LLM or
  search call waits out their whole start-to-close timeout (minutes), too long for CI;
* 1 SIGTERM trial: the worker is asked to stop while an activity runs, drains and exits 0;
* 1 server restart: the Temporal dev server is stopped mid-run and started on the same SQLite file.

The 30-trial run over every kill target is in docs/performance.md ("Chaos").
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from deepsci.settings import REPO_ROOT

CHAOS = REPO_ROOT / "bench" / "chaos.py"
ARGS = ["--trials", "2", "--targets", "activity:fetch_parse", "--sigterms", "1", "--server-restarts", "1",
        "--sub-questions", "1", "--seed", "20261121", "--json"]
KEYS = {"trials", "completed", "duplicate_side_effects", "recovery_s_p50", "recovery_s_p95", "recovery_s_max"}


@pytest.fixture(scope="module")
def chaos(tmp_path_factory) -> dict:
    details = tmp_path_factory.mktemp("chaos") / "details.json"
    proc = subprocess.Popen([sys.executable, str(CHAOS), *ARGS, "--details", str(details)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    try:
        out, err = proc.communicate(timeout=270)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the harness stops its stack on SIGTERM
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"bench/chaos.py took over 270 s:\n{err[-3000:]}")
    return {"rc": proc.returncode, "stdout": out, "stderr": err,
            "details": json.loads(details.read_text()) if details.exists() else None}


def _trials(chaos: dict, scenario: str) -> list[dict]:
    assert chaos["details"], chaos["stderr"][-3000:]
    return [t for t in chaos["details"]["trials"] if t["scenario"] == scenario]


def _one_report_each(trial: dict) -> None:
    for wid, counts in trial["side_effects"].items():
        assert counts == {"reports": 1, "ledger": 1, "files": 2}, (wid, counts)


def test_harness_json_after_sigkills(chaos):
    assert chaos["rc"] == 0, chaos["stderr"][-3000:]
    summary = json.loads(chaos["stdout"])
    assert set(summary) == KEYS
    assert summary["trials"] == 4
    assert summary["completed"] == summary["trials"]
    assert summary["duplicate_side_effects"] == 0
    assert 0 < summary["recovery_s_p50"] <= summary["recovery_s_max"]

    details = chaos["details"]
    assert details["lost_side_effects"] == 0
    g = details["global"]
    assert g["qdrant_points"] == g["qdrant_unique_points"] == g["chunk_rows"] > 0
    assert g["stray_report_files"] == [] and g["repeated_ledger_keys"] == 0

    kills = _trials(chaos, "kill")
    assert len(kills) == 2
    for t in kills:
        assert t["status"] == "published" and t["error"] is None
        assert any(a["activity"] == "fetch_parse" for a in t["in_flight"]), t["in_flight"]
        assert t["recovery_s"] is not None and t["worker_start_s"] is not None
        _one_report_each(t)


def test_server_restart_mid_run_completes(chaos):
    (t,) = _trials(chaos, "server-restart")
    assert t["error"] is None, t["error"]
    assert t["status"] == "published" and t["completed"]
    assert t["server_down_s"] >= 1
    assert t["recovery_s"] is not None and t["recovery_s"] >= t["server_down_s"] - 0.5
    _one_report_each(t)


def test_sigterm_drains_the_worker_and_the_run_completes(chaos):
    (t,) = _trials(chaos, "sigterm")
    assert t["error"] is None, t["error"]
    assert t["worker_exit"] == 0
    assert t["drain_s"] < 10 + 5  # workers.main.GRACEFUL_SHUTDOWN plus start-up slack
    assert t["drained"], "no activity was running when SIGTERM was sent"
    for a in t["drained"]:
        # finished by the draining worker on its first attempt: nothing was left for a retry
        assert a["completed"] and a["final_attempt"] == 1 and a["by_drained_worker"], a
    assert t["status"] == "published" and t["completed"]
    _one_report_each(t)
