#!/usr/bin/env python3
"""Tracing overhead: the same offline research runs with tracing off and on; the target is <= 5%.

    .venv/bin/python bench/tracing.py --runs 10 --rounds 3 [--otlp http://127.0.0.1:6006/v1/traces] --json

Each mode runs in its own child process (a process has one global tracer provider): a private
Temporal dev server and Postgres on free ports, the real workers, ``--runs`` sequential runs of
one question on the sample corpus (auto-approved; the first run of each mode warms caches and is
not counted). "on" installs the SDK provider with a BatchSpanProcessor to ``--otlp`` (a running
trace backend) or, without it, to an in-memory exporter. ``--rounds R`` repeats the pair R times,
alternating which mode goes first (off/on, on/off, ...), so a load change on a shared host does not
always fall on the same mode. stdout (--json): {"off_s", "on_s", "overhead", "round_overheads",
"cpu_overhead", "round_cpu_overheads", "spans"}: medians over the rounds; ``overhead`` is the median
of the rounds' on/off ratios of wall time per run minus 1, ``cpu_overhead`` the same for the CPU
time of the worker process per run.
The ratio, not the seconds, is the result (the host is shared and noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
QUESTION = "How do durable agent systems avoid doing side effects twice when workers crash?"


async def _mode(mode: str, runs: int, otlp: str | None) -> dict:
    from opentelemetry import trace
    from temporalio.client import Client
    from temporalio.testing import WorkflowEnvironment

    from activities.deps import build_deps
    from deepsci.contracts import ResearchRequest
    from deepsci.settings import Settings
    from deepsci.temporal_client import DATA_CONVERTER, tracing_interceptors
    from starter.runs import start_or_attach
    from starter.stack import start_postgres, stop_postgres, temporal_binary
    from workers.main import build_workers
    from workflows import search_attributes as sa

    memory = None
    if mode == "on":
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider()
        if otlp:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp)))
        else:
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
            memory = InMemorySpanExporter()
            provider.add_span_processor(BatchSpanProcessor(memory))
        trace.set_tracer_provider(provider)
    home = Path(tempfile.mkdtemp(prefix="deepsci-bench-tracing-"))
    home.chmod(0o755)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start_postgres(home / "postgres", port)
    env = await WorkflowEnvironment.start_local(data_converter=DATA_CONVERTER, search_attributes=list(sa.KEYS),
                                                dev_server_existing_path=temporal_binary(),
                                                dev_server_log_level="error")
    settings = Settings(home=home, database_url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
                        metrics_port=0, _env_file=None)
    deps = build_deps(settings)
    prefix = f"b{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(update={"task_queue_prefix": prefix})
    # As `deepsci run` starts a run: a client with the tracing interceptors and the root span of
    # starter.runs, so "on" emits the workflow-side spans too (the workers inherit the interceptor).
    client = await Client.connect(env.client.service_client.config.target_host, namespace="default",
                                  data_converter=DATA_CONVERTER, interceptors=tracing_interceptors())
    workers = build_workers(client, deps, prefix)
    polling = [asyncio.ensure_future(w.run()) for w in workers]
    times, cpu = [], []
    try:
        for i in range(runs + 1):
            req = ResearchRequest(question=QUESTION, auto_approve=True, max_sub_questions=2)
            t0, c0 = time.perf_counter(), time.process_time()
            started = await start_or_attach(client, settings, req, f"research-bench-{mode}-{i}")
            await started.handle.result()
            if i:  # the first run warms the corpus catalog and the embedding model
                times.append(time.perf_counter() - t0)
                # CPU seconds of this process (every thread: workflows, activities, exporter):
                # less swayed than wall time by other processes on a shared host.
                cpu.append(time.process_time() - c0)
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*polling, return_exceptions=True)
        await env.shutdown()
        deps.vectors.client.close()
        stop_postgres(home / "postgres")
        shutil.rmtree(home, ignore_errors=True)
    spans = 0
    if mode == "on":
        trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
        spans = len(memory.get_finished_spans()) if memory else -1
    return {"median_s": statistics.median(times), "cpu_s": statistics.median(cpu), "spans": spans}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=1, help="off/on pairs, alternating which goes first")
    ap.add_argument("--otlp", default=None, help="OTLP/HTTP traces endpoint of a running backend")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--mode", choices=["off", "on"], help=argparse.SUPPRESS)  # the child process
    a = ap.parse_args()
    if a.mode:
        sys.stdout.write(json.dumps(asyncio.run(_mode(a.mode, a.runs, a.otlp))) + "\n")
        return
    per_round: list[dict] = []
    for r in range(a.rounds):
        out = {}
        for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
            argv = [sys.executable, __file__, "--mode", mode, "--runs", str(a.runs)]
            argv += ["--otlp", a.otlp] if a.otlp else []
            proc = subprocess.run(argv, capture_output=True, text=True, check=True)
            out[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"round {r + 1} {mode}: median {out[mode]['median_s']:.3f}s wall, "
                  f"{out[mode]['cpu_s']:.3f}s CPU", file=sys.stderr)
        per_round.append(out)
    ratios = [o["on"]["median_s"] / o["off"]["median_s"] - 1 for o in per_round]
    cpu_ratios = [o["on"]["cpu_s"] / o["off"]["cpu_s"] - 1 for o in per_round]
    res = {"off_s": round(statistics.median(o["off"]["median_s"] for o in per_round), 3),
           "on_s": round(statistics.median(o["on"]["median_s"] for o in per_round), 3),
           "overhead": round(statistics.median(ratios), 4), "round_overheads": [round(x, 4) for x in ratios],
           "cpu_overhead": round(statistics.median(cpu_ratios), 4),
           "round_cpu_overheads": [round(x, 4) for x in cpu_ratios],
           "spans": per_round[-1]["on"]["spans"]}
    sys.stdout.write(json.dumps(res) + "\n" if a.json else f"{res}\n")


if __name__ == "__main__":
    main()
