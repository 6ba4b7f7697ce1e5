#!/usr/bin/env python3
"""What waiting for a human costs: N runs parked at the plan gate, then decided in bulk.

    .venv/bin/python bench/parked.py --runs 500 [--max-cached 200|-1] [--decision reject|approve]

On a private stack (bench/_stack.py) with ONE worker process (bench/_worker.py: workers.main with the
sticky cache bounded by DEEPSCI_WORKER_MAX_CACHED_WORKFLOWS=--max-cached; -1 runs the stock worker
with the SDK's default cache of 1,000 runs):

1. measure the idle worker and Temporal server (RSS of their process trees, from /proc);
2. start ``--runs`` runs (no auto-approve; a 24 h gate deadline) and wait until the visibility store
   counts all of them at ``DeepsciOpenGate = 'plan'``: ``park_s``;
3. let them settle, measure RSS again and the CPU both processes use over ``--idle-s`` seconds;
4. send the ``decide`` Update to ``--sequential`` runs one at a time (a lone reviewer's click), then
   to the rest ``--concurrency`` at a time (a bulk decision), and read from each history
   when it resumed: the first command the run issued after accepting the decision (the gate's
   ``notify`` activity; with approve also the first child workflow), server timestamps, minus the
   moment the Update was sent. Approved runs are terminated afterwards (the point is the wake-up,
   not N pipelines on a shared machine).

The last stdout line is JSON with ``runs``, ``worker_rss_mb``, ``server_rss_mb`` (parked),
``park_s``, ``resume_p50_s``, ``resume_p95_s`` (all decisions), ``resume_single_p50_s`` (the
one-at-a-time ones), the idle RSS, the slope per parked run (KB), the
CPU while parked, and ``max_cached``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
import uuid

from _stack import CORPUS, DATASET, PrivateStack, log, run_on, tree_cpu_s, tree_rss_mb
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from deepsci.contracts import GateDecision, ResearchRequest
from deepsci.settings import REPO_ROOT
from deepsci.temporal_client import connect
from starter import stack
from workflows.research import ResearchWorkflow

E = EventType
RESUMED = {E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
           E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED}


def p95(xs: list[float]) -> float:
    ordered = sorted(xs)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


async def _bounded(n: int, limit: int, fn) -> list:
    sem = asyncio.Semaphore(limit)

    async def one(i: int):
        async with sem:
            return await fn(i)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def count_at_gate(client: Client, queue: str) -> int:
    try:
        got = await client.count_workflows(
            f"TaskQueue = '{queue}' AND ExecutionStatus = 'Running' AND DeepsciOpenGate = 'plan'")
        return got.count
    except RPCError:
        return -1


def _ts(e) -> float:
    return e.event_time.seconds + e.event_time.nanos / 1e9


async def resumed_at(handle: WorkflowHandle) -> float | None:
    """Server time of the first command the run issued after accepting the decision."""
    accepted = False
    async for e in handle.fetch_history_events():
        if e.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            accepted = True
        elif accepted and e.event_type in RESUMED:
            return _ts(e)
    return None


async def bench(args: argparse.Namespace, pstack: PrivateStack) -> dict:
    pstack.start_postgres()
    await pstack.start_temporal()
    await pstack.start_worker()
    client = await connect(pstack.settings)
    worker_pid, server_pid = pstack.worker.pid, pstack.temporal.pid
    queue = pstack.settings.queue("workflows")
    await asyncio.sleep(args.settle_s)
    worker_idle, server_idle = tree_rss_mb(worker_pid), tree_rss_mb(server_pid)
    log(f"idle: worker {worker_idle} MB, server {server_idle} MB", "parked")

    questions = [q["question"] for q in json.loads(DATASET.read_text())["questions"]]
    tag = uuid.uuid4().hex[:6]
    wids = [f"research-parked-{tag}-{i:05d}" for i in range(args.runs)]

    async def start(i: int) -> WorkflowHandle:
        req = ResearchRequest(question=questions[i % len(questions)], corpus=str(CORPUS), max_sub_questions=2)
        return await client.start_workflow(ResearchWorkflow.run, req, id=wids[i], task_queue=queue)

    t0 = time.monotonic()
    handles = await _bounded(args.runs, args.concurrency, start)
    started_s = time.monotonic() - t0
    while (parked := await count_at_gate(client, queue)) < args.runs:
        if time.monotonic() - t0 > args.timeout_s:
            raise TimeoutError(f"only {parked} of {args.runs} runs parked in {args.timeout_s}s")
        await asyncio.sleep(0.25)
    park_s = time.monotonic() - t0
    log(f"{args.runs} runs started in {started_s:.1f}s, all parked at the plan gate after {park_s:.1f}s", "parked")

    await asyncio.sleep(args.settle_s)
    worker_rss, server_rss = tree_rss_mb(worker_pid), tree_rss_mb(server_pid)
    cpu0 = tree_cpu_s(worker_pid), tree_cpu_s(server_pid)
    await asyncio.sleep(args.idle_s)
    cpu1 = tree_cpu_s(worker_pid), tree_cpu_s(server_pid)
    worker_cpu_pct = round(100 * (cpu1[0] - cpu0[0]) / args.idle_s, 1)
    server_cpu_pct = round(100 * (cpu1[1] - cpu0[1]) / args.idle_s, 1)
    log(f"parked: worker {worker_rss} MB ({worker_cpu_pct}% CPU), server {server_rss} MB ({server_cpu_pct}% CPU)",
        "parked")

    sent: list[float] = [0.0] * args.runs
    update_s: list[float] = [0.0] * args.runs

    async def decide(i: int) -> None:
        sent[i] = time.time()
        t = time.monotonic()
        await handles[i].execute_update(ResearchWorkflow.decide, GateDecision(
            gate="plan", decision=args.decision, reviewer="bench", comment="bulk decision"))
        update_s[i] = time.monotonic() - t

    single = min(args.sequential, args.runs)
    for i in range(single):  # one at a time first: the latency of a lone click
        await decide(i)
    t1 = time.monotonic()
    await _bounded(args.runs - single, args.concurrency, lambda i: decide(single + i))
    decide_all_s = time.monotonic() - t1
    worker_rss_after = tree_rss_mb(worker_pid)
    resumed = await _bounded(args.runs, args.concurrency, lambda i: resumed_at(handles[i]))
    latencies = [r - s for r, s in zip(resumed, sent, strict=True) if r is not None]
    lone = [r - s for r, s in zip(resumed[:single], sent[:single], strict=True) if r is not None]
    if len(latencies) < args.runs:
        log(f"{args.runs - len(latencies)} runs show no command after the decision", "parked")
    if args.decision == "approve":
        await _bounded(args.runs, args.concurrency, lambda i: handles[i].terminate("bench: measured"))
    slope = 1024 / args.runs
    return {
        "runs": args.runs, "max_cached": args.max_cached, "decision": args.decision,
        "worker_rss_mb": worker_rss, "server_rss_mb": server_rss, "park_s": round(park_s, 2),
        "resume_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "resume_p95_s": round(p95(latencies), 3) if latencies else None,
        "resume_max_s": round(max(latencies), 3) if latencies else None,
        "resume_single_p50_s": round(statistics.median(lone), 3) if lone else None,
        "resume_single_max_s": round(max(lone), 3) if lone else None,
        "update_p50_s": round(statistics.median(update_s), 3), "concurrency": args.concurrency,
        "decide_all_s": round(decide_all_s, 2), "start_all_s": round(started_s, 2),
        "worker_idle_rss_mb": worker_idle, "server_idle_rss_mb": server_idle,
        "worker_rss_after_decisions_mb": worker_rss_after,
        "worker_kb_per_run": round((worker_rss - worker_idle) * slope, 1),
        "server_kb_per_run": round((server_rss - server_idle) * slope, 1),
        "worker_cpu_parked_pct": worker_cpu_pct, "server_cpu_parked_pct": server_cpu_pct,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000, help="runs to park (default 1000)")
    ap.add_argument("--max-cached", type=int, default=200,
                    help="the worker's sticky cache (worker_max_cached_workflows, default 200); "
                    "-1: the stock worker, the SDK default 1000")
    ap.add_argument("--decision", choices=["reject", "approve"], default="reject",
                    help="what every run is told (default reject: the run closes its gate and ends)")
    ap.add_argument("--concurrency", type=int, default=20, help="starts / updates in flight (default 20)")
    ap.add_argument("--sequential", type=int, default=10,
                    help="decide this many runs one at a time first (resume_single_*), the rest in bulk")
    ap.add_argument("--idle-s", type=float, default=10.0, help="CPU measured over this many parked seconds")
    ap.add_argument("--settle-s", type=float, default=3.0, help="wait before each RSS reading")
    ap.add_argument("--timeout-s", type=float, default=1800.0, help="time allowed to park every run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary state dir")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    if args.max_cached >= 0:
        argv_w = [sys.executable, str(REPO_ROOT / "bench" / "_worker.py")]
        env = {"DEEPSCI_WORKER_MAX_CACHED_WORKFLOWS": str(args.max_cached)}
    else:
        argv_w, env = stack.worker_argv(), {}
    pstack = PrivateStack(keep=args.keep, prefix="parked", env=env, worker_argv=argv_w)
    return run_on(pstack, bench, args)


if __name__ == "__main__":
    sys.exit(main())
