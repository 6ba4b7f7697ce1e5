"""The benchmarks' last JSON line at a tiny size: the documented keys with sane values.

Mechanism checks, not timing assertions: each benchmark runs once as a subprocess (all three at
once, each on its own private stack or loopback fake), and only the shape of its figures is checked.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

import pytest

from deepsci.settings import REPO_ROOT
from tests.helpers import CORPUS

BENCH = REPO_ROOT / "bench"
# ~80 s on an idle-ish 2-core machine, 220 s at load 19: the three run at once, each bounded below.
pytestmark = pytest.mark.timeout(600)
LOAD = {"loadavg", "cpus"}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    corpus = tmp_path_factory.mktemp("corpus")  # two documents: the corpus catalog embeds every file
    for name in ("retries-backoff-and-jitter.md", "idempotency-keys-and-exactly-once-effects.md"):
        shutil.copy(CORPUS / name, corpus / name)
    commands = {
        "overhead": ["overhead.py", "--rounds", "1", "--questions", "1", "--sub-questions", "1",
                     "--corpus", str(corpus), "--probe-steps", "2"],
        "parked": ["parked.py", "--runs", "3", "--idle-s", "1", "--settle-s", "0.5", "--max-cached", "2"],
        "embedding": ["embedding.py", "--chunks", "8", "--batch", "8", "--repeat", "1"],
    }
    procs = {name: subprocess.Popen([sys.executable, str(BENCH / argv[0]), *argv[1:]], cwd=REPO_ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, argv in commands.items()}
    out: dict[str, dict] = {}
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=420)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=60)
        lines = stdout.strip().splitlines()
        out[name] = {"rc": proc.returncode, "stderr": stderr[-3000:],
                     "json": json.loads(lines[-1]) if lines else None}
    return out


def _last_json(results: dict, name: str) -> dict:
    r = results[name]
    assert r["rc"] == 0 and r["json"] is not None, r["stderr"]
    assert LOAD <= set(r["json"])
    return r["json"]


def test_overhead_prints_the_ratio_of_temporal_to_plain(results):
    got = _last_json(results, "overhead")
    assert {"ratio", "plain_s", "temporal_s", "rounds", "breakdown"} <= set(got)
    assert got["rounds"] == 1 and got["ratio"] > 0 and got["plain_s"] > 0 and got["temporal_s"] > 0
    b = got["breakdown"]
    # Both paths ran the same steps: one activity per plain step, and one child per sub-question.
    assert b["activities_per_run"] == b["plain_steps_per_run"] > 0
    assert b["workflows_per_run"] == 2
    assert set(b["probe_ms_per_step"]) == {"other_queue", "same_queue", "local"}
    assert all(ms > 0 for ms in b["probe_ms_per_step"].values())


def test_parked_prints_memory_and_resume_latency(results):
    got = _last_json(results, "parked")
    assert {"runs", "worker_rss_mb", "server_rss_mb", "park_s", "resume_p50_s", "resume_p95_s"} <= set(got)
    assert got["runs"] == 3 and got["max_cached"] == 2
    assert got["worker_rss_mb"] > 0 and got["server_rss_mb"] > 0 and got["park_s"] > 0
    assert 0 < got["resume_p50_s"] <= got["resume_p95_s"]
    assert got["resume_single_p50_s"] > 0  # the three decisions were sent one at a time


def test_embedding_prints_batched_vs_single_ratios(results):
    got = _last_json(results, "embedding")
    assert got["chunks"] == 8
    assert got["local_ratio"] > 0 and got["openai_ratio"] > 0
    # One request per chunk one by one, one per batch batched (+ the warm-up call).
    assert got["openai_requests"] == 1 + 8 + 1
