"""`deepsci replay --file` with what an operator (or a typo) may hand it: a FIFO, /dev/zero, a huge
or non-JSON file are refused at once in one line (exit 2); a saved history still replays."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import DEEPSCI, free_port

HISTORIES = Path(__file__).parents[1] / "histories"


def _replay(*files: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "400", "DEEPSCI_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    args = [a for f in files for a in ("--file", f)]
    return subprocess.run([DEEPSCI, "replay", *args], capture_output=True, text=True, timeout=60, env=env)


def _refused(got: subprocess.CompletedProcess, reason: str) -> None:
    assert got.returncode == 2, got.stderr
    line = got.stderr.strip()
    assert "\n" not in line and line.startswith("error: ") and reason in line, got.stderr


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "history.json"
    os.mkfifo(fifo)  # no writer: a plain open() would wait forever
    _refused(_replay(str(fifo)), "not a regular file")


def test_dev_zero_is_refused_without_reading_it():
    _refused(_replay("/dev/zero"), "not a regular file")


@pytest.mark.parametrize("content, reason", [
    (None, "over the 67108864 byte limit"),  # a sparse 65 MiB file: no disk, no memory
    (b"\x00\xff not json", "not JSON"),
    (b'{"events": "nope"}', "not a Temporal history"),
])
def test_oversized_and_malformed_files_are_refused_in_one_line(tmp_path, content, reason):
    f = tmp_path / "h.json"
    if content is None:
        with open(f, "wb") as out:
            out.truncate(65 << 20)
    else:
        f.write_bytes(content)
    _refused(_replay(str(f)), reason)


def test_missing_file_is_one_line_and_a_saved_history_still_replays(tmp_path):
    _refused(_replay(str(tmp_path / "absent.json")), "No such file or directory")
    saved = sorted(HISTORIES.glob("*.json"))[0]
    got = _replay(str(saved))
    assert got.returncode == 0 and "1 replayed, 0 non-deterministic" in got.stdout, got.stderr
