"""Bounds at the CLI, as a user hits them: an infinite budget, an overlong run id. Each is refused in
one line with exit code 2 before any Temporal call (the address points at a closed port, so reaching
for the server would fail differently)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.helpers import DEEPSCI, free_port


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "400", "DEEPSCI_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    return subprocess.run([DEEPSCI, *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("args, reason", [
    (["--usd", "inf"], "--usd: Input should be a finite number"),
    (["--usd", "nan"], "--usd: Input should be a finite number"),
    (["--usd", "1e12"], "--usd: Input should be less than or equal to 1000000"),
    (["--calls", "10000000"], "--calls: Input should be less than or equal to 1000000"),
])
def test_raise_budget_refuses_unbounded_values_in_one_line(args, reason):
    got = _cli("raise-budget", "research-anything", *args)
    assert got.returncode == 2, got.stderr
    assert got.stderr.strip() == f"error: {reason}", got.stderr


def test_an_overlong_run_id_is_refused_before_the_run_starts():
    got = _cli("run", "What is full jitter?", "--id", "x" * 300)
    assert got.returncode == 2, got.stderr
    assert got.stderr.strip() == "error: --id is too long: the run id would be 309 characters, at most 128"
