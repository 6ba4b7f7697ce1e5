#!/usr/bin/env python3
"""What durability costs: the same pipeline steps as a plain asyncio script and as the Temporal workflow.

    .venv/bin/python bench/overhead.py --rounds 5 --questions 2 [--sub-questions 4] [--details out.json]

One private stack (bench/_stack.py: Postgres and the Temporal dev server on free ports, temporary
DEEPSCI_HOME) and ONE set of activity dependencies (``activities.deps.build_deps``: the same
Postgres, Qdrant folder, embedder and offline engine) serve both paths, in this process:

* plain: the activity methods called in the workflow's order (plan; per sub-question, concurrently:
  search, fetch_parse per hit, index, retrieve; drafts; critique/revise; aggregate; publish) on the
  same 8-thread pool a worker uses, each inside ``temporalio.testing.ActivityEnvironment`` (it gives
  ``activity.heartbeat()`` its context and nothing else);
* temporal: ``ResearchWorkflow`` with ``--auto-approve`` on an in-process worker built by
  ``workers.main.build_workers`` with that same pool and deps.

A warm-up round (both paths, every question; not timed) fills the content-addressed documents,
chunks and embedding cache, so the timed rounds compare the same warm work: the harshest case for
the engine, whose cost is then not hidden behind embedding. Rounds alternate which path goes first.

The last stdout line is JSON: ``ratio`` (median temporal_s / median plain_s), ``plain_s``,
``temporal_s`` (medians of one round's runs, summed over the questions), ``rounds``, ``questions``,
and ``breakdown``: where the extra time goes, from the runs' histories (parent and children) and a
payload round trip of every activity input and output through the data converter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _probe import ProbeWorkflow, noop
from _stack import CORPUS, DATASET, PrivateStack, log, run_on
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.deps import Deps, build_deps
from activities.indexing import IndexActivities
from activities.planning import PlanActivities
from activities.publishing import PublishActivities
from activities.sources import SourceActivities
from activities.writing import WritingActivities
from deepsci.contracts import (
    AggregateInput,
    CritiqueInput,
    DraftInput,
    DraftRef,
    EvidenceRef,
    FetchParseInput,
    IndexInput,
    PlanInput,
    PublishInput,
    ResearchRequest,
    ResearchResult,
    RetrieveInput,
    SearchInput,
    SourceRecord,
    Stats,
    SubQuestion,
)
from deepsci.temporal_client import DATA_CONVERTER, connect
from workers.main import build_workers
from workflows.research import ResearchWorkflow

E = EventType


# ---------------------------------------------------------------- the plain script


class PlainPipeline:
    """The workflow's steps with no engine: direct calls, asyncio.gather for the fan-outs."""

    def __init__(self, deps: Deps, pool: ThreadPoolExecutor):
        self.pool = pool
        self.plan_a, self.src, self.idx = PlanActivities(deps), SourceActivities(deps), IndexActivities(deps)
        self.wri, self.pub = WritingActivities(deps), PublishActivities(deps)
        self.step_s: dict[str, list[float]] = defaultdict(list)
        self.payloads: list = []  # every input and output of the last run, for the converter cost

    async def _call(self, fn, inp):
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        out = await loop.run_in_executor(self.pool, ActivityEnvironment().run, fn, inp)
        self.step_s[fn.__name__].append(time.perf_counter() - t0)
        self.payloads += [inp, out]
        return out

    async def run(self, wid: str, req: ResearchRequest) -> ResearchResult:
        self.payloads = []
        started = time.monotonic()
        plan = await self._call(self.plan_a.plan, PlanInput(
            idempotency_key=f"{wid}/plan", question=req.question, max_sub_questions=req.max_sub_questions))
        subs = list(plan.sub_questions)
        found = await asyncio.gather(*(self._investigate(wid, req, sq) for sq in subs))
        sources: dict[str, SourceRecord] = {}
        for records, _ in found:
            for s in records:
                sources.setdefault(s.uri, s)
        evidence = {sq.id: ev for sq, (_, ev) in zip(subs, found, strict=True)}
        drafts = list(await asyncio.gather(*(self._draft(wid, req, sq, evidence[sq.id], 0) for sq in subs)))
        drafts = await self._revise(wid, req, subs, drafts, sources)
        report = await self._call(self.wri.aggregate, AggregateInput(
            idempotency_key=f"{wid}/aggregate/v0", workflow_id=wid, question=req.question, drafts=drafts,
            sources=list(sources.values())))
        srcs = list(sources.values())
        result = ResearchResult(
            workflow_id=wid, status="published", question=req.question, mode=plan.mode, message="published",
            report_key=report.key, citations=report.citations, sources=srcs,
            stats=Stats(sources_found=len(srcs), sources_parsed=sum(s.status == "parsed" for s in srcs),
                        duration_s=round(time.monotonic() - started, 3)))
        await self._call(self.pub.publish, PublishInput(
            idempotency_key=f"{wid}/publish", workflow_id=wid, report_key=report.key, result=result))
        return result

    async def _investigate(self, wid: str, req: ResearchRequest,
                           sq: SubQuestion) -> tuple[list[SourceRecord], list[EvidenceRef]]:
        key = f"{wid}/{sq.id}"
        found = await self._call(self.src.search, SearchInput(
            idempotency_key=f"{key}/search", query=sq.text, corpus=req.corpus, providers=req.search,
            limit=req.max_sources_per_sub_question))
        records = await asyncio.gather(*(self._fetch(key, h.uri, h.title) for h in found.hits))
        unique = list(dict.fromkeys(r.content_hash for r in records if r.status == "parsed" and r.content_hash))
        if not unique:
            return list(records), []
        await self._call(self.idx.index, IndexInput(idempotency_key=f"{key}/index", content_hashes=unique))
        got = await self._call(self.idx.retrieve, RetrieveInput(
            idempotency_key=f"{key}/retrieve", query=sq.text, content_hashes=unique,
            limit=req.evidence_per_sub_question))
        return list(records), got.evidence

    async def _fetch(self, key: str, uri: str, title: str) -> SourceRecord:
        import hashlib

        item = hashlib.sha256(uri.encode()).hexdigest()[:16]
        try:
            return await self._call(self.src.fetch_parse, FetchParseInput(
                idempotency_key=f"{key}/fetch/{item}", uri=uri, title=title))
        except Exception as err:  # noqa: BLE001 - recorded like the workflow does
            return SourceRecord(source_id=item, uri=uri, title=title or uri, kind="unknown", status="failed",
                                error=str(err))

    async def _draft(self, wid, req, sq, evidence, rnd, notes=()) -> DraftRef:
        return await self._call(self.wri.draft, DraftInput(
            idempotency_key=f"{wid}/draft/{sq.id}/r{rnd}", question=req.question, sub_question=sq,
            evidence=evidence, revision_round=rnd, notes=list(notes)))

    async def _revise(self, wid, req, subs, drafts, sources) -> list[DraftRef]:
        hashes = sorted({s.content_hash for s in sources.values() if s.content_hash})
        by_id = {sq.id: sq for sq in subs}
        for rnd in range(1, req.max_revision_rounds + 1):
            critique = await self._call(self.wri.critique, CritiqueInput(
                idempotency_key=f"{wid}/critique/r{rnd}", question=req.question, drafts=drafts,
                reviewer_comment=""))
            weak = {i.sub_question_id for i in critique.issues}
            if not weak or not hashes:
                break

            async def redo(d: DraftRef, rnd: int = rnd, weak: set[str] = weak) -> DraftRef:
                if d.sub_question_id not in weak:
                    return d
                sq = by_id[d.sub_question_id]
                wider = await self._call(self.idx.retrieve, RetrieveInput(
                    idempotency_key=f"{wid}/retrieve/{sq.id}/r{rnd}", query=f"{sq.text} {req.question}",
                    content_hashes=hashes, limit=req.evidence_per_sub_question * 2))
                return await self._draft(wid, req, sq, wider.evidence, rnd)

            drafts = list(await asyncio.gather(*(redo(d) for d in drafts)))
        return drafts


# ---------------------------------------------------------------- the Temporal run and its history


async def temporal_run(client: Client, queue: str, wid: str, req: ResearchRequest) -> ResearchResult:
    handle = await client.start_workflow(ResearchWorkflow.run, req, id=wid, task_queue=queue)
    return await handle.result()


def _ts(e) -> float:
    return e.event_time.seconds + e.event_time.nanos / 1e9


async def histories(client: Client, wid: str) -> dict[str, list]:
    out = {wid: [e async for e in client.get_workflow_handle(wid).fetch_history_events()]}
    for e in out[wid]:
        if e.event_type == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            cid = e.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
            out[cid] = [x async for x in client.get_workflow_handle(cid).fetch_history_events()]
    return out


def history_figures(hists: dict[str, list]) -> dict:
    """Counts and latencies of one run (parent + children) from the server's event timestamps."""
    wft_run, wft_wait, first_wft, act_wait, act_run, child_start, sizes = [], [], [], [], [], [], []
    events = 0
    for hist in hists.values():
        by_id = {e.event_id: e for e in hist}
        events += len(hist)
        sizes.append(sum(e.ByteSize() for e in hist))
        seen_first = False
        for e in hist:
            t = e.event_type
            if t == E.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                wft_wait.append(_ts(e) - _ts(by_id[e.workflow_task_started_event_attributes.scheduled_event_id]))
            elif t == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                d = _ts(e) - _ts(by_id[e.workflow_task_completed_event_attributes.started_event_id])
                (wft_run if seen_first else first_wft).append(d)
                seen_first = True
            elif t == E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                act_wait.append(_ts(e) - _ts(by_id[e.activity_task_started_event_attributes.scheduled_event_id]))
            elif t == E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                act_run.append(_ts(e) - _ts(by_id[e.activity_task_completed_event_attributes.started_event_id]))
            elif t == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
                a = e.child_workflow_execution_started_event_attributes
                child_start.append(_ts(e) - _ts(by_id[a.initiated_event_id]))
    return {"workflows": len(hists), "events": events, "history_kb": round(sum(sizes) / 1024, 1),
            "largest_history_kb": round(max(sizes) / 1024, 1),
            "activities": len(act_run), "activity_exec_s": act_run, "activity_queue_s": act_wait,
            "workflow_tasks": len(wft_run) + len(first_wft), "wft_queue_s": wft_wait, "wft_first_s": first_wft,
            "wft_other_s": wft_run, "child_start_s": child_start}


def converter_cost_s(values: list, repeat: int = 3) -> float:
    """Seconds to encode and decode every value once with the client's data converter."""
    conv = DATA_CONVERTER.payload_converter
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for v in values:
            conv.from_payloads(conv.to_payloads([v]), [type(v)])
        best = min(best, time.perf_counter() - t0)
    return best


def _ms(xs: list[float]) -> float | None:
    return round(statistics.median(xs) * 1000, 1) if xs else None


async def probe(client: Client, prefix: str, steps: int) -> dict[str, float]:
    """Milliseconds per sequential no-op activity, by dispatch mode (bench/_probe.py)."""
    wq, aq = f"{prefix}-probe-workflows", f"{prefix}-probe-activities"
    out: dict[str, float] = {}
    workers = [Worker(client, task_queue=wq, workflows=[ProbeWorkflow], activities=[noop]),
               Worker(client, task_queue=aq, activities=[noop])]
    async with running(workers):
        await client.execute_workflow(ProbeWorkflow.run, args=[2, "other-queue", aq], id=f"probe-{prefix}-warm",
                                      task_queue=wq)
        for mode in ("other-queue", "same-queue", "local"):
            t0 = time.perf_counter()
            await client.execute_workflow(ProbeWorkflow.run, args=[steps, mode, aq], id=f"probe-{prefix}-{mode}",
                                          task_queue=wq)
            out[mode.replace("-", "_")] = round(1000 * (time.perf_counter() - t0) / steps, 1)
    return out


# ---------------------------------------------------------------- the benchmark


@contextlib.asynccontextmanager
async def running(workers):
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)


async def bench(args: argparse.Namespace, pstack: PrivateStack) -> dict:
    questions = [q["question"] for q in json.loads(DATASET.read_text())["questions"]][: args.questions]
    pstack.start_postgres()
    await pstack.start_temporal()
    settings = pstack.settings
    deps = build_deps(settings)
    client = await connect(settings)
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="deepsci-activity")
    plain = PlainPipeline(deps, pool)
    queue = settings.queue("workflows")
    tag = uuid.uuid4().hex[:6]

    def request(q: str) -> ResearchRequest:
        return ResearchRequest(question=q, corpus=str(args.corpus), auto_approve=True,
                               max_sub_questions=args.sub_questions)

    times: dict[str, list[float]] = {"plain": [], "temporal": []}
    temporal_wids: list[str] = []
    payloads: list = []
    try:
        async with running(build_workers(client, deps, settings.task_queue_prefix)):
            for rnd in range(args.rounds + 1):  # round 0 warms caches up, untimed
                order = ["plain", "temporal"] if rnd % 2 == 0 else ["temporal", "plain"]
                for path in order:
                    t0 = time.perf_counter()
                    for n, q in enumerate(questions):
                        wid = f"research-overhead-{tag}-r{rnd}-q{n}-{path}"
                        if path == "plain":
                            res = await plain.run(wid, request(q))
                            payloads = payloads or list(plain.payloads)
                        else:
                            res = await temporal_run(client, queue, wid, request(q))
                            temporal_wids.append(wid) if rnd else None
                        if res.status != "published":
                            raise RuntimeError(f"{path} run {wid} ended {res.status}: {res.message}")
                    took = time.perf_counter() - t0
                    if rnd:
                        times[path].append(took)
                    log(f"round {rnd}{' (warm-up)' if not rnd else ''} {path}: {took:.2f}s", "overhead")
            figs = [history_figures(await histories(client, w)) for w in temporal_wids]
        probe_ms = await probe(client, f"{settings.task_queue_prefix}-{tag}", args.probe_steps) if args.probe_steps \
            else {}
    finally:
        pool.shutdown(wait=False)
        deps.vectors.client.close()

    plain_s, temporal_s = statistics.median(times["plain"]), statistics.median(times["temporal"])
    runs = len(figs)

    def per_run(key: str) -> float:
        return round(sum(sum(f[key]) for f in figs) / runs, 3)

    def pooled(key: str) -> list[float]:
        return [x for f in figs for x in f[key]]

    conv_s = converter_cost_s(payloads)
    plain_steps = sum(len(v) for v in plain.step_s.values()) / max(1, (args.rounds + 1) * len(questions))
    breakdown = {
        "overhead_s_per_run": round((temporal_s - plain_s) / len(questions), 3),
        "overhead_ms_per_activity": round(1000 * (temporal_s - plain_s) / len(questions)
                                          / (sum(f["activities"] for f in figs) / runs), 1),
        "workflows_per_run": round(sum(f["workflows"] for f in figs) / runs, 1),
        "events_per_run": round(sum(f["events"] for f in figs) / runs, 1),
        "history_kb_per_run": round(sum(f["history_kb"] for f in figs) / runs, 1),
        "largest_history_kb": max(f["largest_history_kb"] for f in figs),
        "activities_per_run": round(sum(f["activities"] for f in figs) / runs, 1),
        "plain_steps_per_run": round(plain_steps, 1),
        "activity_queue_ms_p50": _ms(pooled("activity_queue_s")),
        "activity_queue_s_per_run": per_run("activity_queue_s"),
        "activity_exec_ms_p50": _ms(pooled("activity_exec_s")),
        "plain_step_ms_p50": _ms([x for v in plain.step_s.values() for x in v]),
        "workflow_tasks_per_run": round(sum(f["workflow_tasks"] for f in figs) / runs, 1),
        "wft_queue_ms_p50": _ms(pooled("wft_queue_s")),
        "wft_first_ms_p50": _ms(pooled("wft_first_s")),
        "wft_other_ms_p50": _ms(pooled("wft_other_s")),
        "wft_s_per_run": round(per_run("wft_first_s") + per_run("wft_other_s"), 3),
        "child_start_ms_p50": _ms(pooled("child_start_s")),
        "payload_conversion_ms_per_run": round(conv_s * 1000, 2),
        "probe_ms_per_step": probe_ms,
        "payload_kb_per_run": round(sum(len(p.data) for v in payloads
                                        for p in DATA_CONVERTER.payload_converter.to_payloads([v])) / 1024, 1),
    }
    out = {"ratio": round(temporal_s / plain_s, 3), "plain_s": round(plain_s, 3), "temporal_s": round(temporal_s, 3),
           "rounds": args.rounds, "questions": len(questions), "sub_questions": args.sub_questions,
           "plain_round_s": [round(x, 3) for x in times["plain"]],
           "temporal_round_s": [round(x, 3) for x in times["temporal"]], "breakdown": breakdown}
    if args.details:
        args.details.write_text(json.dumps({"summary": out, "histories": figs,
                                            "plain_step_s": plain.step_s}, indent=2))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds after the warm-up round (default 3)")
    ap.add_argument("--questions", type=int, default=2, help="dataset questions per round (default 2)")
    ap.add_argument("--sub-questions", type=int, default=4, help="max sub-questions per run (default 4)")
    ap.add_argument("--corpus", type=Path, default=CORPUS,
                    help="folder searched by both paths (default: the sample corpus, evals/corpus)")
    ap.add_argument("--probe-steps", type=int, default=20,
                    help="steps of the no-op probe workflow per dispatch mode (default 20; 0 skips it)")
    ap.add_argument("--details", type=Path, default=None, help="write per-run history figures to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary state dir")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.questions < 1:
        ap.error("--rounds and --questions must be >= 1")
    pstack = PrivateStack(keep=args.keep, prefix="overhead")
    return run_on(pstack, bench, args)


if __name__ == "__main__":
    sys.exit(main())
