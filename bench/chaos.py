#!/usr/bin/env python3
"""Chaos harness: research runs on a private embedded stack while the worker is killed mid-run.

    .venv/bin/python bench/chaos.py --trials 30 --json [--seed S]
    .venv/bin/python bench/chaos.py --trials 2 --sigterms 1 --server-restarts 1 --json --details out.json

It starts its own stack in a temporary DEEPSCI_HOME (Postgres, the Temporal dev server with its
SQLite file, one worker process) on free ports, so it never touches a developer's stack on
7233/8233/55432, and stops all of it at the end, also on errors and on SIGTERM/SIGINT.

Trials (each a fresh workflow id, a question of evals/datasets/agent_reliability.json, the
sample corpus, --auto-approve):

* ``kill`` (``--trials N``): when the trial's target is reached, SIGKILL the worker, start a new
  worker at once, and wait for the run. Targets: a random delay after the start, a stage shown
  by the ``progress`` query (+0-0.3 s), or the moment a given activity type is pending in the
  run or one of its InvestigateWorkflow children (``--targets`` restricts the list).
* ``sigterm`` (``--sigterms K``): when an activity is running (``--sigterm-target``, by default a
  ``search``, which a fresh worker spends a second or more in), SIGTERM the worker; it must drain
  (exit 0 within its grace period, the running activities completed by it on their first
  attempt); then a new worker starts.
* ``server-restart`` (``--server-restarts M``): stop the Temporal dev server mid-run (SIGTERM),
  keep it down 1-3 s, start it again on the same SQLite file; the worker stays up.

A target the run never reached, or a signal that landed after the run had finished, is tried
again on a new run (up to 4 runs); the finished run still counts in the side-effect checks below.

Side effects, counted after every run and, for Qdrant, after the worker is stopped (local mode
allows one process per folder):

* per run: rows in ``reports`` (1), ledger entries under ``<workflow id>/`` (1: the publish key),
  files ``<workflow id>.md`` and ``.json`` in the reports dir (2);
* overall: report files that belong to no run, ledger keys recorded twice, Qdrant points whose id
  is no ``chunks`` row (and ids stored twice), and ``chunks`` rows without a point (lost).

``duplicate_side_effects`` sums every count above its expected value; a missing one is *lost*
(reported on stderr and in --details) and fails the trial. ``completed`` counts trials whose run
ended ``published`` with nothing lost. ``recovery_s`` of a trial is the time from the disruption
(signal sent, or server stop begun) to the first workflow task or activity completed for the run
(its own history or a child's) after the replacement worker was launched (server scenario: after
the stop), from the server's event timestamps; it includes the new worker's start-up.

With --json stdout is exactly ``{"trials", "completed", "duplicate_side_effects",
"recovery_s_p50", "recovery_s_p95", "recovery_s_max"}`` (all scenarios together); progress goes to stderr. Exit
status 0 only if every trial completed and nothing was duplicated or lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import signal
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

from _stack import CORPUS, DATASET, WORKER_GRACE_S, PrivateStack
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from deepsci.contracts import Progress, ResearchRequest, ResearchResult
from deepsci.store import ArtifactStore
from deepsci.temporal_client import connect

STAGES = ["starting", "planning", "awaiting-plan-approval", "investigating", "drafting", "critiquing",
          "revising", "aggregating", "awaiting-report-approval", "publishing", "published"]
ACTIVITIES = ["plan", "search", "fetch_parse", "index", "retrieve", "draft", "critique", "aggregate",
              "publish"]
KILL_TARGETS = ["delay", "delay", "stage:investigating", "stage:drafting", "stage:aggregating",
                *(f"activity:{a}" for a in ACTIVITIES)]
SERVER_TARGETS = ["stage:investigating", "stage:drafting", "started"]
PROGRESS_EVENTS = {EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED}


def log(msg: str) -> None:
    sys.stderr.write(f"[chaos {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- looking at a run


async def _progress(handle: WorkflowHandle) -> Progress | None:
    try:
        return await handle.query("progress", result_type=Progress, rpc_timeout=timedelta(seconds=2))
    except Exception:  # noqa: BLE001 - not started yet, between tasks, server away
        return None


async def _running(handle: WorkflowHandle) -> bool:
    desc = await handle.describe()
    return desc.status == WorkflowExecutionStatus.RUNNING


async def in_flight(client: Client, workflow_id: str) -> tuple[bool, list[dict]]:
    """(run still running, pending activities of the run and its running children)."""
    desc = await client.get_workflow_handle(workflow_id).describe()
    raw = desc.raw_description
    out: list[dict] = []

    def add(wf: str, pending) -> None:
        for pa in pending:
            state = "started" if pa.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED else "scheduled"
            out.append({"workflow_id": wf, "activity_id": pa.activity_id, "activity": pa.activity_type.name,
                        "state": state, "attempt": pa.attempt})

    add(workflow_id, raw.pending_activities)
    for child in raw.pending_children:
        try:
            cdesc = await client.get_workflow_handle(child.workflow_id).describe()
        except Exception:  # noqa: BLE001 - just finished
            continue
        add(child.workflow_id, cdesc.raw_description.pending_activities)
    return desc.status == WorkflowExecutionStatus.RUNNING, out


async def wait_target(client: Client, handle: WorkflowHandle, target: str, rng: random.Random,
                      timeout_s: float) -> dict | None:
    """Wait until ``target`` is reached; None if the run closed first. Returns what was seen."""
    deadline = time.monotonic() + timeout_s
    kind, _, arg = target.partition(":")
    if kind == "delay":
        until = time.monotonic() + float(arg)
        while time.monotonic() < until:
            if not await _running(handle):
                return None
            await asyncio.sleep(min(0.1, max(0.0, until - time.monotonic())))
        return {}
    while time.monotonic() < deadline:
        if kind == "stage":
            p = await _progress(handle)
            if p is not None and p.stage in STAGES and STAGES.index(p.stage) >= STAGES.index(arg):
                if p.stage in ("published",):
                    return None
                await asyncio.sleep(rng.uniform(0, 0.3))
                return {"stage": p.stage}
            if p is None and not await _running(handle):
                return None
            await asyncio.sleep(0.05)
        else:  # activity:<type> (pending), started (any activity running), started:<type>
            running, acts = await in_flight(client, handle.id)
            if not running:
                return None
            if kind == "activity":
                hit = [a for a in acts if a["activity"] == arg]
            else:
                hit = [a for a in acts if a["state"] == "started" and (not arg or a["activity"] == arg)]
            if hit:
                return {"activity": hit[0]["activity"], "state": hit[0]["state"], "pending": acts}
            await asyncio.sleep(0.02)
    raise TimeoutError(f"target {target} not reached in {timeout_s:.0f}s")


async def _history(client: Client, workflow_id: str) -> list:
    return [e async for e in client.get_workflow_handle(workflow_id).fetch_history_events()]


async def run_histories(client: Client, workflow_id: str) -> dict[str, list]:
    """The run's history and its children's, by workflow id."""
    out = {workflow_id: await _history(client, workflow_id)}
    for e in out[workflow_id]:
        if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            cid = e.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
            out[cid] = await _history(client, cid)
    return out


def first_progress_after(histories: dict[str, list], t: float) -> float | None:
    times = [_event_ts(e) for h in histories.values() for e in h if e.event_type in PROGRESS_EVENTS]
    later = [x for x in times if x >= t]
    return min(later) if later else None


def _event_ts(e) -> float:
    return e.event_time.seconds + e.event_time.nanos / 1e9


def activity_outcomes(histories: dict[str, list], wanted: list[dict]) -> list[dict]:
    """For activities pending at a disruption: the attempt that completed them and the worker."""
    out = []
    for a in wanted:
        hist = histories.get(a["workflow_id"], [])
        sched = next((e.event_id for e in hist if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                      and e.activity_task_scheduled_event_attributes.activity_id == a["activity_id"]), None)
        started = next((e.activity_task_started_event_attributes for e in hist
                        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                        and e.activity_task_started_event_attributes.scheduled_event_id == sched), None)
        done = next((_event_ts(e) for e in hist if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                     and e.activity_task_completed_event_attributes.scheduled_event_id == sched), None)
        out.append({**a, "final_attempt": started.attempt if started else None,
                    "identity": started.identity if started else None, "completed": done is not None,
                    "completed_at": done})
    return out


# ---------------------------------------------------------------- trials


@dataclass
class Trial:
    n: int
    scenario: str
    target: str
    question_id: str
    workflow_id: str = ""
    runs: list[str] = field(default_factory=list)  # every run started for this trial (misses first)
    reached: dict | None = None
    in_flight: list[dict] = field(default_factory=list)
    worker_exit: int | None = None  # sigterm: the drained worker's exit status
    drain_s: float | None = None
    worker_start_s: float | None = None
    server_down_s: float | None = None
    worker_survived: bool | None = None  # server-restart: the worker process stayed up
    recovery_s: float | None = None
    resumed_s: float | None = None  # disruption -> every activity pending at it completed
    status: str | None = None
    run_s: float | None = None
    drained: list[dict] = field(default_factory=list)
    side_effects: dict = field(default_factory=dict)
    lost: int = 0
    duplicates: int = 0
    completed: bool = False
    error: str | None = None


class Harness:
    def __init__(self, args: argparse.Namespace, stack_: PrivateStack, rng: random.Random):
        self.args, self.stack, self.rng = args, stack_, rng
        self.settings = stack_.settings
        self.questions = json.loads(DATASET.read_text())["questions"]
        self.tag = uuid.uuid4().hex[:6]
        self.durations: list[float] = []
        self.client: Client | None = None

    def _request(self, question: str) -> ResearchRequest:
        return ResearchRequest(question=question, corpus=str(CORPUS), auto_approve=True,
                               max_sub_questions=self.args.sub_questions)

    async def _start(self, trial: Trial, question: str) -> WorkflowHandle:
        assert self.client is not None
        wid = f"research-chaos-{self.tag}-{trial.n:03d}-{trial.question_id}"
        if trial.runs:
            wid += f"-r{len(trial.runs) + 1}"
        trial.runs.append(wid)
        trial.workflow_id = wid
        return await self.client.start_workflow(
            "ResearchWorkflow", self._request(question), id=wid, task_queue=self.settings.queue("workflows"),
            result_type=ResearchResult)

    def _target_for_attempt(self, trial: Trial, attempt: int) -> str:
        if trial.target.startswith("delay:") and attempt == 1:
            return trial.target  # an explicit delay from --targets
        if trial.target.startswith("started:") and attempt > 2:
            return "started"  # that activity type was too quick to catch twice: any running one
        if trial.target == "delay" or attempt > 1 and trial.scenario == "kill":
            est = statistics.median(self.durations) if self.durations else 10.0
            return f"delay:{self.rng.uniform(0.2, 0.9 * est / attempt):.2f}"
        return trial.target

    async def run_trial(self, trial: Trial) -> None:
        assert self.client is not None
        q = self.questions[trial.n % len(self.questions)]
        trial.question_id = q["id"]
        for attempt in range(1, 5):
            handle = await self._start(trial, q["question"])
            t_start = time.monotonic()
            target = self._target_for_attempt(trial, attempt)
            reached = await wait_target(self.client, handle, target, self.rng, self.args.run_timeout)
            if reached is None:
                log(f"trial {trial.n}: run finished before {target}; starting another run")
                self.durations.append(time.monotonic() - t_start)
                continue
            pending = reached.pop("pending", None)
            trial.reached = {"target": target, **reached}
            t_disrupt, t_resume, old_pid = await self._disrupt(trial, handle, pending)
            closed = (await handle.describe()).close_time
            if closed is None or closed.timestamp() > t_disrupt:
                break
            # The run finished between seeing the target and the signal: no trial, try again.
            log(f"trial {trial.n}: run finished before the {trial.scenario} landed; starting another run")
            self.durations.append(time.monotonic() - t_start)
        else:
            raise RuntimeError(f"target {trial.target} never reached in 4 runs")

        result: ResearchResult = await asyncio.wait_for(handle.result(), timeout=self.args.run_timeout)
        trial.status = result.status
        trial.run_s = round(result.stats.duration_s, 2)
        histories = await run_histories(self.client, handle.id)
        first = first_progress_after(histories, t_resume)
        trial.recovery_s = round(first - t_disrupt, 2) if first is not None else None
        trial.in_flight = activity_outcomes(histories, trial.in_flight)
        done = [a["completed_at"] for a in trial.in_flight]
        if done and None not in done:
            trial.resumed_s = round(max(done) - t_disrupt, 2)
        for a in trial.in_flight:
            at = a.pop("completed_at")
            a["completed_after_s"] = round(at - t_disrupt, 2) if at is not None else None
        # What an undisturbed run takes, roughly (minus the wait for lost activities): for delay targets.
        lost_time = max(trial.recovery_s or 0, trial.resumed_s or 0)
        self.durations.append(max(1.0, result.stats.duration_s - lost_time))
        if trial.scenario == "sigterm":
            trial.drained = [dict(a) for a in trial.in_flight if a["state"] == "started"]
            for d in trial.drained:
                d["by_drained_worker"] = bool(d["identity"]) and d["identity"].startswith(f"{old_pid}@")

    async def _disrupt(self, trial: Trial, handle: WorkflowHandle,
                       pending: list[dict] | None) -> tuple[float, float, int | None]:
        """Kill, SIGTERM or restart the server; (disruption time, resume time, old worker pid)."""
        assert self.client is not None
        old_pid = self.stack.worker.pid if self.stack.worker else None
        if trial.scenario == "kill":
            self.stack.signal_worker(signal.SIGKILL)
            t_disrupt = time.time()
            await self.stack.wait_worker(10)
            _, trial.in_flight = await in_flight(self.client, handle.id)
            t_resume = time.time()
            trial.worker_start_s = round(await self.stack.start_worker(), 2)
        elif trial.scenario == "sigterm":
            # What was pending when the target was seen, a few ms ago: no second look, the
            # activities we want to see drained are short.
            trial.in_flight = pending if pending is not None else (await in_flight(self.client, handle.id))[1]
            self.stack.signal_worker(signal.SIGTERM)
            t_disrupt = time.time()
            trial.worker_exit = await self.stack.wait_worker(WORKER_GRACE_S + 20)
            trial.drain_s = round(time.time() - t_disrupt, 2)
            if trial.worker_exit is None:
                self.stack.signal_worker(signal.SIGKILL)
                await self.stack.wait_worker(10)
            t_resume = time.time()
            trial.worker_start_s = round(await self.stack.start_worker(), 2)
        else:  # server-restart
            _, trial.in_flight = await in_flight(self.client, handle.id)
            t_disrupt = time.time()
            await self.stack.stop_temporal()
            await asyncio.sleep(self.rng.uniform(1, 3))
            t_resume = time.time()
            await self.stack.start_temporal()
            trial.server_down_s = round(time.time() - t_disrupt, 2)
            trial.worker_survived = self.stack.worker is not None and self.stack.worker.poll() is None
            if not trial.worker_survived:
                log(f"trial {trial.n}: the worker exited during the server restart; starting another")
                trial.worker_start_s = round(await self.stack.start_worker(), 2)
        return t_disrupt, t_resume, old_pid

    def check_run(self, store: ArtifactStore, workflow_id: str, published: bool) -> tuple[dict, int, int]:
        """(counts, duplicates, lost) of one run's publish side effects."""
        counts = store.side_effect_counts(workflow_id)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in workflow_id)
        files = sorted(p.name for p in self.settings.reports_path.glob(f"{safe}.*"))
        counts["files"] = len(files)
        expected = {"reports": 1, "ledger": 1, "files": 2} if published else {"reports": 0, "ledger": 0, "files": 0}
        dup = sum(max(0, counts[k] - v) for k, v in expected.items())
        lost = sum(max(0, v - counts[k]) for k, v in expected.items())
        return counts, dup, lost


def qdrant_points(path: Path) -> list[str]:
    """Every point id in the local Qdrant folder (the worker must be stopped: one process per folder)."""
    from qdrant_client import QdrantClient

    if not path.exists():
        return []
    client = QdrantClient(path=str(path))
    try:
        ids: list[str] = []
        for col in client.get_collections().collections:
            if not col.name.startswith("chunks_"):
                continue
            offset = None
            while True:
                points, offset = client.scroll(col.name, limit=1000, offset=offset, with_payload=False,
                                               with_vectors=False)
                ids += [str(p.id) for p in points]
                if offset is None:
                    break
        return ids
    finally:
        client.close()


def plan_trials(args: argparse.Namespace, rng: random.Random) -> list[Trial]:
    kill_targets = args.targets.split(",") if args.targets else KILL_TARGETS
    targets: list[str] = []
    while len(targets) < args.trials:
        block = list(kill_targets)
        rng.shuffle(block)
        targets += block
    trials = [Trial(n=0, scenario="kill", target=t, question_id="") for t in targets[: args.trials]]
    trials += [Trial(n=0, scenario="sigterm", target=args.sigterm_target, question_id="")
               for _ in range(args.sigterms)]
    trials += [Trial(n=0, scenario="server-restart", target=rng.choice(SERVER_TARGETS), question_id="")
               for _ in range(args.server_restarts)]
    offset = rng.randrange(100)
    for i, t in enumerate(trials):
        t.n = i + offset
    return trials


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x}s"


def breakdown(trials: list[Trial]) -> dict:
    """recovery_s and resumed_s by scenario and target (median, max), for the docs."""
    groups: dict[str, list[Trial]] = {}
    for t in trials:  # by the target the disruption really hit (a missed target falls back to a delay)
        hit = (t.reached or {}).get("target", t.target).split(":")
        kind = "delay" if hit[0] == "delay" else ":".join(hit)
        groups.setdefault(f"{t.scenario} {kind}", []).append(t)
    out = {}
    for key, ts in sorted(groups.items()):
        rec = [t.recovery_s for t in ts if t.recovery_s is not None]
        res = [t.resumed_s for t in ts if t.resumed_s is not None]
        out[key] = {"n": len(ts), "completed": sum(t.completed for t in ts),
                    "recovery_s_p50": round(statistics.median(rec), 2) if rec else None,
                    "recovery_s_p95": p95(rec),
                    "recovery_s_max": max(rec) if rec else None,
                    "resumed_s_p50": round(statistics.median(res), 2) if res else None,
                    "resumed_s_max": max(res) if res else None}
    return out


def p95(values: list[float]) -> float | None:
    """The 95th percentile (nearest rank): with fewer than 20 values, the maximum."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)], 2)


def summarize(trials: list[Trial], duplicates: int) -> dict:
    rec = sorted(t.recovery_s for t in trials if t.recovery_s is not None)
    return {
        "trials": len(trials),
        "completed": sum(t.completed for t in trials),
        "duplicate_side_effects": duplicates,
        "recovery_s_p50": round(statistics.median(rec), 2) if rec else None,
        "recovery_s_p95": p95(rec),
        "recovery_s_max": round(max(rec), 2) if rec else None,
    }


async def run_all(args: argparse.Namespace, pstack: PrivateStack, rng: random.Random) -> dict:
    t0 = time.monotonic()
    log(f"state dir {pstack.home}; temporal {pstack.settings.temporal_address}, "
        f"ui :{pstack.settings.temporal_ui_port}, postgres :{pstack.settings.pg_port}")
    pstack.start_postgres()
    await pstack.start_temporal()
    first_start = await pstack.start_worker()
    log(f"stack up in {time.monotonic() - t0:.1f}s (worker polling after {first_start:.1f}s)")
    h = Harness(args, pstack, rng)
    h.client = await connect(pstack.settings)
    store = ArtifactStore(pstack.settings.dsn)
    trials = plan_trials(args, rng)

    for t in trials:
        try:
            await h.run_trial(t)
        except Exception as err:  # noqa: BLE001 - recorded; the trial failed
            t.error = f"{type(err).__name__}: {err}"
            if pstack.worker is None or pstack.worker.poll() is not None:
                await pstack.start_worker()
        for wid in t.runs:
            published = wid != t.workflow_id or t.status == "published"
            counts, dup, lost = h.check_run(store, wid, published)
            t.side_effects[wid] = counts
            t.duplicates += dup
            t.lost += lost
        t.completed = t.status == "published" and t.lost == 0 and t.error is None
        extra = ""
        if t.scenario == "sigterm":
            extra = f" exit={t.worker_exit} drain={t.drain_s}s"
        elif t.scenario == "server-restart":
            extra = f" down={t.server_down_s}s worker_survived={t.worker_survived}"
        inflight = ",".join(sorted({f"{a['activity']}/{a['state']}" for a in t.in_flight})) or "-"
        log(f"trial {t.n} {t.scenario} {t.reached or t.target}: {t.status} in {t.run_s}s, "
            f"in flight {inflight}, recovery {_s(t.recovery_s)}, resumed {_s(t.resumed_s)}{extra}"
            f"{', DUPLICATES ' + str(t.duplicates) if t.duplicates else ''}"
            f"{', LOST ' + str(t.lost) if t.lost else ''}{', ERROR ' + t.error if t.error else ''}")

    # Global checks: stray report files, repeated ledger keys, Qdrant points vs chunk rows.
    known = set()
    for t in trials:
        for wid in t.runs:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in wid)
            known |= {f"{safe}.md", f"{safe}.json"}
    reports_dir = pstack.settings.reports_path
    stray = sorted(p.name for p in reports_dir.iterdir() if p.name not in known) if reports_dir.exists() else []
    repeated_keys = store.repeated_ledger_keys()
    chunk_ids = store.chunk_point_ids()
    final_exit = await pstack.stop_worker()
    point_ids = qdrant_points(pstack.settings.qdrant_dir)
    points, chunks = set(point_ids), set(chunk_ids)
    global_dups = len(stray) + repeated_keys + len(points - chunks) + (len(point_ids) - len(points))
    missing_points = len(chunks - points)
    duplicates = sum(t.duplicates for t in trials) + global_dups
    lost = sum(t.lost for t in trials) + missing_points
    summary = summarize(trials, duplicates)
    details = {
        "summary": summary, "seed": args.seed, "elapsed_s": round(time.monotonic() - t0, 1),
        "lost_side_effects": lost, "by_target": breakdown(trials),
        "global": {"stray_report_files": stray, "repeated_ledger_keys": repeated_keys,
                   "qdrant_points": len(point_ids), "qdrant_unique_points": len(points),
                   "chunk_rows": len(chunk_ids), "points_without_chunk_row": len(points - chunks),
                   "chunk_rows_without_point": missing_points, "last_worker_exit": final_exit,
                   "workers_started": pstack.workers_started},
        "trials": [asdict(t) for t in trials],
    }
    log(f"done in {details['elapsed_s']}s: {summary}; lost {lost}; qdrant {len(point_ids)} points, "
        f"{len(chunk_ids)} chunk rows; last worker exit {final_exit}")
    return details


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=5, help="SIGKILL trials (default 5)")
    ap.add_argument("--sigterms", type=int, default=0, help="SIGTERM (drain) trials")
    ap.add_argument("--sigterm-target", default="started:search",
                    help="when to send SIGTERM (default started:search: a fresh worker catalogs the corpus "
                    "in its first search, a second or more; 'started' = any running activity)")
    ap.add_argument("--server-restarts", type=int, default=0, help="Temporal dev server restart trials")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    ap.add_argument("--targets", default=None,
                    help="comma-separated kill targets (default: all of " + ",".join(dict.fromkeys(KILL_TARGETS))
                    + ")")
    ap.add_argument("--sub-questions", type=int, default=4,
                    help="max sub-questions per run (default 4, the CLI default; fewer = shorter runs)")
    ap.add_argument("--run-timeout", type=float, default=900, help="seconds a run may take (default 900)")
    ap.add_argument("--json", action="store_true", help="print only the summary JSON on stdout")
    ap.add_argument("--details", type=Path, default=None, help="write every trial's record to this JSON file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary state dir (logs) for inspection")
    args = ap.parse_args(argv)
    if args.trials < 0 or args.sigterms < 0 or args.server_restarts < 0:
        ap.error("counts must be >= 0")
    if args.targets:
        bad = [t for t in args.targets.split(",")
               if t not in KILL_TARGETS and not (t.startswith("delay:") or t == "started")]
        if bad:
            ap.error(f"unknown targets: {', '.join(bad)}")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    log(f"seed {args.seed}")
    rng = random.Random(args.seed)

    def on_term(signum, frame):  # noqa: ARG001 - clean up the stack on SIGTERM too
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    pstack = PrivateStack(keep=args.keep)
    details: dict | None = None
    try:
        details = asyncio.run(run_all(args, pstack, rng))
    except KeyboardInterrupt as err:
        log(f"interrupted ({err}); stopping the stack")
        return 130
    finally:
        pstack.close()
    if args.details:
        args.details.write_text(json.dumps(details, indent=2, default=str))
    summary = details["summary"]
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        for k, v in summary.items():
            sys.stdout.write(f"{k:24} {v}\n")
        sys.stdout.write(f"{'lost_side_effects':24} {details['lost_side_effects']}\n")
    ok = (summary["completed"] == summary["trials"] and summary["duplicate_side_effects"] == 0
          and details["lost_side_effects"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
