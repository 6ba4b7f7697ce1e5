"""The CLI as reviewers and operators use it (issue 11): reading the report at the gate, runs whose
stage says how they ended, bulk review, short ids, failures in one line, early refusals."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess

import pytest

from deepsci.contracts import ResearchRequest
from starter.cli.review import pending_runs
from tests.helpers import CORPUS, DEEPSCI, start_run, wait_for_gate
from tests.helpers import cli_env as _env
from tests.helpers import deepsci_cli as _deepsci
from workflows import search_attributes as sa

QUESTION = "What is full jitter in retry backoff?"


async def _until(check, timeout_s: float = 60):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        value = await check()
        if value or loop.time() > end:
            return value
        await asyncio.sleep(0.3)


async def test_a_reviewer_reads_the_report_at_the_gate_and_a_rejected_run_says_so(env, worker, settings):
    e = _env(env, settings, worker)
    args = ("run", QUESTION, "--corpus", str(CORPUS), "--max-sub-questions", "1", "--max-rounds", "0")
    code, out, err = await _deepsci(e, *args, "--id", f"gate-{worker}", "--json")
    assert code == 0, err
    wid = f"research-gate-{worker}"
    handle = env.client.get_workflow_handle(wid)
    await wait_for_gate(handle, "plan")

    # the `research-` prefix is optional; a near miss is answered with the id meant
    code, out, err = await _deepsci(e, "approve", f"gate-{worker}", "--gate", "plan", "--reviewer", "ann")
    assert code == 0, err
    code, out, err = await _deepsci(e, "status", f"gate-{worker[:-1]}")
    assert code == 4 and f"did you mean {wid}" in err and "Traceback" not in err

    await wait_for_gate(handle, "report")
    code, out, err = await _deepsci(e, "show", f"gate-{worker}", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["question"] == QUESTION and len(shown["plan"]) == 1 and shown["open_gate"] == "report"
    assert shown["report_markdown"].startswith("# ") and "[1]" in shown["report_markdown"]
    assert shown["approve"] == f"deepsci approve {wid} --gate report --version 2"
    code, out, err = await _deepsci(e, "show", wid)  # piped: Markdown printed, no pager
    assert code == 0 and "report under review (version 2)" in out and QUESTION in out
    # ...as written: no line of it (file:// links in the references included) reflowed
    printed = {line.rstrip() for line in out.splitlines()}
    assert all(line.rstrip() in printed for line in shown["report_markdown"].splitlines()), out

    # a narrow terminal neither wraps nor cuts the link
    code, out, err = await _deepsci({**e, "COLUMNS": "60"}, "status", wid)
    assert code == 0, err
    assert shown["web_ui"] in out.splitlines(), out

    code, out, err = await _deepsci(e, "reject", wid, "--gate", "report", "--reviewer", "ann")
    assert code == 0, err
    code, out, err = await _deepsci(e, "status", wid, "--json")
    assert code == 0 and json.loads(out)["stage"] == "rejected"
    desc = await handle.describe()
    assert desc.typed_search_attributes.get(sa.STAGE) == "rejected"
    code, out, err = await _deepsci(e, "result", wid)
    assert code == 0 and "status: rejected  report rejected by ann" in out

    # asking again after a rejection is a new run under the same id; the same question with
    # other options is another id
    code, out, err = await _deepsci(e, *args, "--id", f"gate-{worker}")
    assert code == 0 and "started a new run" in err and "earlier one rejected" in err, err
    code, out, err = await _deepsci(e, "cancel", wid)
    assert code == 0, err
    assert await _until(lambda: _stage(env, wid, "cancelled")), "cancelled run kept its stage"

    code, out, err = await _deepsci(e, "runs", "--stage", "cancelled", "--json")
    assert code == 0 and wid in [r["workflow_id"] for r in json.loads(out)["runs"]]
    code, out, err = await _deepsci(e, "logs", wid)
    assert code == 0 and "run canceled" in out
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00  #", line) for line in out.splitlines())


async def _stage(env, wid: str, stage: str) -> bool:
    desc = await env.client.get_workflow_handle(wid).describe()
    return desc.typed_search_attributes.get(sa.STAGE) == stage


async def test_bulk_review_of_many_parked_runs_in_one_process(env, worker, settings):
    # 40 runs: parking 300 here takes minutes; bench/bulk_review.py does 300 (docs/performance.md).
    queue = f"{worker}-workflows"
    req = ResearchRequest(question=QUESTION, corpus=str(CORPUS), max_sub_questions=1, max_revision_rounds=0)
    handles = await asyncio.gather(*(start_run(env.client, worker, req) for _ in range(40)))

    async def all_parked():
        return len(await pending_runs(env.client, "plan", queue)) == len(handles)

    assert await _until(all_parked, 240), len(await pending_runs(env.client, "plan", queue))
    e = _env(env, settings, worker)
    code, out, err = await _deepsci(e, "pending", "--queue", queue, "--limit", "15", "--page", "3", "--json")
    assert code == 0, err
    page = json.loads(out)
    assert page["total"] == 40 and len(page["runs"]) == 10
    assert {r["gate_version"] for r in page["runs"]} == {1} and page["runs"][0]["question"] == QUESTION
    code, out, err = await _deepsci(e, "pending", "--queue", queue, "--limit", "15")
    assert code == 0 and "40 waiting, showing 1-15; `--page 2` for more" in out, out

    # several ids: each decision validated on its own (one stale version is refused, exit 2)
    code, out, err = await _deepsci(e, "approve", handles[0].id, handles[1].id, "--gate", "plan",
                                    "--version", "2", "--json")
    assert code == 2 and all("unknown version 2" in r["reason"] for r in json.loads(out))

    code, out, err = await _deepsci(e, "reject", "--all-pending", "--gate", "plan", "--queue", queue,
                                    "--reviewer", "ann", "--comment", "out of scope", "--json")
    assert code == 0, err
    decided = json.loads(out)
    assert len(decided) == 40 and all(r["accepted"] and r["version"] == 1 for r in decided)
    results = await asyncio.gather(*(h.result() for h in handles))
    assert {r.status for r in results} == {"rejected"}


async def test_a_failed_run_is_one_line_with_its_cause_and_exit_5(env, worker, settings):
    # A provider the worker does not know fails the search with InvalidInput (the CLI refuses
    # the name up front; another client may not).
    req = ResearchRequest(question=QUESTION, corpus=str(CORPUS), max_sub_questions=1, auto_approve=True,
                          search=["altavista"])
    handle = await start_run(env.client, worker, req)
    e = _env(env, settings, worker)
    code, out, err = await _deepsci(e, "result", handle.id, "--wait")
    assert code == 5, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "InvalidInput" in lines[0] and "altavista" in lines[0] and "fix:" in lines[0]
    assert "Traceback" not in err
    code, out, err = await _deepsci(e, "status", handle.id, "--json")
    assert code == 0 and json.loads(out)["stage"] == "failed"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_search_providers_are_checked_before_the_run_starts(tmp_path):
    env = {**os.environ, "COLUMNS": "200", "DEEPSCI_HOME": str(tmp_path),
           "DEEPSCI_SEARXNG_URL": f"http://127.0.0.1:{_closed_port()}", "BRAVE_API_KEY": "",
           "DEEPSCI_TEMPORAL_ADDRESS": f"127.0.0.1:{_closed_port()}"}
    proc = subprocess.run([DEEPSCI, "run", "What is jitter?", "--search", "searxng,brave"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "DEEPSCI_SEARXNG_URL" in proc.stderr and "BRAVE_API_KEY" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_with_no_worker_run_and_status_say_so_at_once(env, settings):
    e = _env(env, settings, "nobody-polls")
    code, out, err = await _deepsci(e, "run", QUESTION, "--corpus", str(CORPUS), "--id", "idle-run")
    assert code == 0 and "no worker polls task queue nobody-polls-workflows" in err and "deepsci up" in err
    code, out, err = await _deepsci(e, "status", "idle-run")
    assert code == 0 and "no worker polls" in err and "research-idle-run" in out
    code, out, err = await _deepsci(e, "cancel", "idle-run", "--terminate")
    assert code == 0, err


def test_help_version_and_short_help():
    out = subprocess.run([DEEPSCI, "-h"], capture_output=True, text=True, check=True).stdout
    for cmd in ("show", "runs", "cancel", "logs"):
        assert f" {cmd} " in out, cmd
    assert "Exit codes:" in out
    version = subprocess.run([DEEPSCI, "--version"], capture_output=True, text=True, check=True).stdout
    assert re.fullmatch(r"deepsci \d+\.\d+\.\d+\S*\n", version)


@pytest.mark.parametrize("cmd", ["", "run", "show", "pending", "approve", "raise-budget", "eval", "ingest"])
def test_switches_have_no_type_label_and_every_option_has_help(cmd):
    out = subprocess.run([DEEPSCI, *cmd.split(), "-h"], capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "400"}).stdout
    assert "<bool>" not in out, out
    rows = [ln.strip("│ ") for ln in out.splitlines() if re.match(r"│ +(\* +)?-{1,2}[a-z]|│ +\* +[a-z_]+ ", ln)]
    assert rows and all(re.search(r"[A-Za-z]{3,}[^\]]*[.,)`]", r.split("  ", 2)[-1]) for r in rows), rows
