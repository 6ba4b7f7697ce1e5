#!/usr/bin/env python3
"""Bulk review through the real CLI: N runs parked at the plan gate, listed with `deepsci pending`
and rejected with one `deepsci reject --all-pending` (issue 11).

    .venv/bin/python bench/bulk_review.py --runs 300

On a private stack (bench/_stack.py) with the stock worker (`deepsci worker`):

1. start ``--runs`` runs (no auto-approve) ``--concurrency`` at a time: ``start_s``;
2. wait until the visibility store counts all of them at ``DeepsciOpenGate = 'plan'``: ``park_s``
   (each run: a workflow task, the plan activity, a task that opens the gate and its ``notify``
   activity, a task);
3. ``deepsci pending --queue Q --limit 15 --page 3 --json`` (one visibility query): ``pending_s``,
   with the process start-up;
4. ``deepsci reject --all-pending --gate plan --queue Q --json`` (one process, each decision an
   Update validated by its run): ``decide_s``;
5. wait until every run is closed (each closes its gate, sends its gate-closed ``notify`` and
   ends): ``finish_s``.

The last stdout line is JSON with ``runs``, ``start_s``, ``park_s``, ``pending_s``, ``decide_s``,
``finish_s``, ``total_s``, ``decided`` (accepted decisions) and the load averages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid

from _stack import CORPUS, PrivateStack, log, run_on

from deepsci.contracts import ResearchRequest
from deepsci.settings import REPO_ROOT
from deepsci.temporal_client import connect
from starter.cli.review import pending_runs
from workflows.research import ResearchWorkflow

DEEPSCI = str(REPO_ROOT / ".venv" / "bin" / "deepsci")


async def _cli(env: dict[str, str], *args: str) -> tuple[int | None, str, str]:
    proc = await asyncio.create_subprocess_exec(DEEPSCI, *args, env={**env, "COLUMNS": "200"},
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def _closed(client, queue: str) -> int:
    query = f"WorkflowType = 'ResearchWorkflow' AND TaskQueue = {queue!r} AND ExecutionStatus != 'Running'"
    return (await client.count_workflows(query)).count


async def bench(args: argparse.Namespace, pstack: PrivateStack) -> dict:
    pstack.start_postgres()
    await pstack.start_temporal()
    await pstack.start_worker()
    client = await connect(pstack.settings)
    queue = pstack.settings.queue("workflows")
    req = ResearchRequest(question="What is full jitter in retry backoff?", corpus=str(CORPUS),
                          max_sub_questions=1, max_revision_rounds=0)
    sem = asyncio.Semaphore(args.concurrency)

    async def start_one(i: int) -> None:
        async with sem:
            await client.start_workflow(ResearchWorkflow.run, req, id=f"research-bulk-{i}-{uuid.uuid4().hex[:6]}",
                                        task_queue=queue)

    t0 = time.monotonic()
    await asyncio.gather(*(start_one(i) for i in range(args.runs)))
    t_started = time.monotonic()
    log(f"{args.runs} runs started in {t_started - t0:.1f}s")
    parked = 0
    while parked < args.runs:
        if time.monotonic() - t_started > args.timeout_s:
            raise SystemExit(f"only {parked} of {args.runs} runs parked in {args.timeout_s:g}s")
        await asyncio.sleep(2)
        parked = len(await pending_runs(client, "plan", queue))
        log(f"{parked} parked")
    t_parked = time.monotonic()

    code, out, err = await _cli(pstack.env, "pending", "--queue", queue, "--limit", "15", "--page", "3", "--json")
    t_pending = time.monotonic()
    if code != 0 or json.loads(out)["total"] != args.runs:
        raise SystemExit(f"deepsci pending: exit {code}: {err or out[:500]}")
    code, out, err = await _cli(pstack.env, "reject", "--all-pending", "--gate", "plan", "--queue", queue,
                                "--reviewer", "bench", "--comment", "bulk", "--json")
    t_decided = time.monotonic()
    decided = sum(r["accepted"] for r in json.loads(out)) if out.strip().startswith("[") else 0
    if code != 0:
        raise SystemExit(f"deepsci reject: exit {code}: {err[-500:]}")
    log(f"{decided} rejected in {t_decided - t_pending:.1f}s")
    while await _closed(client, queue) < args.runs:
        if time.monotonic() - t_decided > args.timeout_s:
            raise SystemExit("the rejected runs did not all end")
        await asyncio.sleep(1)
    t_done = time.monotonic()
    return {"bench": "bulk_review", "runs": args.runs, "start_s": round(t_started - t0, 1),
            "park_s": round(t_parked - t_started, 1), "pending_s": round(t_pending - t_parked, 1),
            "decide_s": round(t_decided - t_pending, 1), "finish_s": round(t_done - t_decided, 1),
            "total_s": round(t_done - t0, 1), "decided": decided}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=300, help="runs to park and decide (default 300)")
    ap.add_argument("--concurrency", type=int, default=20, help="starts in flight (default 20)")
    ap.add_argument("--timeout-s", type=float, default=1800.0, help="time allowed to park / to end every run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary state dir")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    return run_on(PrivateStack(keep=args.keep, prefix="bulk"), bench, args)


if __name__ == "__main__":
    sys.exit(main())
