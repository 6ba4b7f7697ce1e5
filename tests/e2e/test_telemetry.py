"""Observability end to end against real parts: a real Phoenix trace backend (the `observe` extra)
receiving OTLP/HTTP from the real SDK, a model-mode run on the fake OpenAI server, and the
worker's real /metrics page parsed by prometheus_client.

One traced run (module fixture) is checked from every side: one trace connected parent->child
across the client, the workflow, its children and every activity; GenAI attributes whose token
counts equal the fake's bill; the same totals in /metrics; the summaries in the Web UI's
describe/history; and a replay of its history emits no span. Another run's worker process is
SIGKILLed mid-activity: the retried attempt joins the run's trace."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.worker import Replayer

from deepsci.contracts import ResearchRequest
from deepsci.llm.client import LlmClient
from deepsci.observe import backend
from deepsci.observe import metrics as obs_metrics
from deepsci.temporal_client import DATA_CONVERTER, tracing_interceptors
from starter.runs import start_or_attach
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.web import DocServer, SearxngFake
from tests.helpers import CORPUS, MODEL_PRICES, free_port, running
from workers.main import build_workers
from workflows import search_attributes as sa
from workflows.investigate import InvestigateWorkflow
from workflows.research import ResearchWorkflow

pytestmark = pytest.mark.skipif(backend.phoenix_binary() is None,
                                reason="the trace backend (extra `observe`) is not installed")

QUESTION = "How should retries use exponential backoff and jitter?"


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="session")
def phoenix(settings, tmp_path_factory):
    """A real Phoenix server on free ports for the session; yields its base URL."""
    s = settings.model_copy(update={"trace_port": free_port(), "trace_grpc_port": free_port()})
    work = tmp_path_factory.mktemp("phoenix")
    log = open(work / "phoenix.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(backend.backend_argv(), env=backend.backend_env(s, work), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{s.trace_port}"
    deadline = time.monotonic() + 400  # Phoenix migrates its database on first start: slow on a busy host
    try:
        while True:
            try:
                _get_json(f"{url}/v1/projects")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Phoenix did not start: {(work / 'phoenix.log').read_text()[-2000:]}") from None
                time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="session")
def spans_in_memory(phoenix):
    """The process's tracer provider: spans go to Phoenix (OTLP/HTTP) and to memory."""
    memory = InMemorySpanExporter()
    # OpenTelemetry's global provider can be set once per process: when an earlier test of the
    # session installed one, add the processors to it instead of being silently ignored.
    current = trace.get_tracer_provider()
    provider = current if isinstance(current, TracerProvider) else TracerProvider()
    to_phoenix = BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{phoenix}/v1/traces"))
    provider.add_span_processor(to_phoenix)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    if provider is not current:
        trace.set_tracer_provider(provider)
    yield memory
    to_phoenix.shutdown()  # before Phoenix stops: later tests' spans are not retried against it


def _all_spans(phoenix: str) -> list[dict]:
    out, cursor = [], None
    while True:
        page = _get_json(f"{phoenix}/v1/projects/default/spans?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
        out += page["data"]
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def _trace_spans(phoenix: str, trace_id: str) -> list[dict]:
    return [sp for sp in _all_spans(phoenix) if sp["context"]["trace_id"] == trace_id]


@dataclasses.dataclass
class Observed:
    result: object
    trace_id: str
    spans: list[dict]
    metrics: dict[tuple[str, tuple], float]
    history: object
    handle: object
    billed: object


def _fresh_corpus(dest):
    """The corpus with unique bytes in every text document: the store is content-addressed and
    shared by the session, so without this an earlier test's run leaves nothing to parse or embed
    and the trace would have no parse/embed spans."""
    marker = uuid.uuid4().hex
    for src in CORPUS.iterdir():
        data = src.read_bytes()
        if src.suffix in (".md", ".html"):
            data += f"\n<!-- {marker} -->\n".encode()
        (dest / src.name).write_bytes(data)
    return dest


def _samples(page: str) -> dict[tuple[str, tuple], float]:
    return {(smp.name, tuple(sorted(smp.labels.items()))): smp.value
            for fam in text_string_to_metric_families(page) for smp in fam.samples}


def _total(m: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    return sum(v for (n, lab), v in m.items()
               if n == name and all(dict(lab).get(k) == val for k, val in labels.items()))


@pytest.fixture(scope="module")
async def observed(env, deps, phoenix, spans_in_memory, tmp_path_factory) -> Observed:
    """One traced model-mode run, its spans from Phoenix and its /metrics page."""
    corpus = _fresh_corpus(tmp_path_factory.mktemp("otel-corpus"))
    port = free_port()
    s = deps.settings.model_copy(update={"metrics_port": port})
    assert obs_metrics.start_endpoint(s)
    runtime = obs_metrics.temporal_runtime(s)
    client = await Client.connect(env.client.service_client.config.target_host, namespace="default",
                                  data_converter=DATA_CONVERTER, interceptors=tracing_interceptors(),
                                  runtime=runtime)
    with FakeOpenAI() as fake:
        ms = s.model_copy(update={
            "openai_base_url": fake.base_url, "openai_api_key": "sk-test", "llm_model": "fake-strong",
            "llm_cheap_model": "fake-cheap", "llm_strong_model": "fake-strong", "llm_prices": MODEL_PRICES,
            "llm_timeout_s": 3.0, "task_queue_prefix": f"o{uuid.uuid4().hex[:10]}"})
        model_deps = dataclasses.replace(deps, settings=ms, llm=LlmClient(ms, deps.store))
        async with obs_metrics.serve_metrics(ms) as serving:
            assert serving
            async with running(build_workers(client, model_deps, ms.task_queue_prefix)):
                req = ResearchRequest(question=QUESTION, corpus=str(corpus), max_sub_questions=2, auto_approve=True)
                started = await start_or_attach(client, ms, req, f"research-otel-{uuid.uuid4().hex[:8]}")
                result = await started.handle.result()
            billed = fake.billed_totals()
            # The exporter drains the SDK's metric buffer every second; under load it can lag, so read
            # until the finished run and every billed token are on the page (or 120 s pass and the
            # tests say what is missing).
            for _ in range(120):
                await asyncio.sleep(1)
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                    samples = _samples(r.read().decode())
                if (_total(samples, "deepsci_runs_finished_total", outcome="published") >= 1
                        and _total(samples, "gen_ai_client_token_usage_sum") >= billed.tokens_in + billed.tokens_out):
                    break
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    assert started.trace_id
    expected = {"research run", "RunWorkflow:ResearchWorkflow", "RunWorkflow:InvestigateWorkflow",
                "RunActivity:publish", "gate report"}
    # Every span of the run this process ended (the in-memory copy is complete after the flush)...
    ended = [sp for sp in spans_in_memory.get_finished_spans()
             if format(sp.context.trace_id, "032x") == started.trace_id]
    for _ in range(120):  # ...must have reached Phoenix, which ingests asynchronously (slow under load)
        spans = _trace_spans(phoenix, started.trace_id)
        if expected <= {sp["name"] for sp in spans} and len(spans) >= len(ended):
            break
        await asyncio.sleep(1)
    return Observed(result, started.trace_id, spans, samples, await started.handle.fetch_history(),
                    started.handle, billed)


async def test_one_run_is_one_connected_trace(observed):
    spans = observed.spans
    ids = {sp["context"]["span_id"] for sp in spans}
    roots = [sp for sp in spans if sp["parent_id"] is None]
    assert [r["name"] for r in roots] == ["research run"]
    assert all(sp["parent_id"] in ids for sp in spans if sp["parent_id"] is not None), "a span lost its parent"
    names = {sp["name"] for sp in spans}
    for activity_name in ("plan", "search", "fetch_parse", "index", "retrieve", "draft", "critique",
                          "aggregate", "publish"):
        assert f"RunActivity:{activity_name}" in names, activity_name
    assert {"RunWorkflow:ResearchWorkflow", "RunWorkflow:InvestigateWorkflow", "fetch", "parse",
            "retrieve", "embed", "citation_check", "gate plan", "gate report"} <= names
    by_id = {sp["context"]["span_id"]: sp for sp in spans}

    def ancestors(sp):
        while sp["parent_id"]:
            sp = by_id[sp["parent_id"]]
            yield sp["name"]

    # a fetch inside an activity attempt, scheduled by the child workflow the run started
    # (Temporal's interceptor parents workflow-side spans on the context the workflow was started with)
    fetch = next(sp for sp in spans if sp["name"] == "fetch")
    chain = list(ancestors(fetch))
    assert chain == ["RunActivity:fetch_parse", "StartActivity:fetch_parse", "StartChildWorkflow:InvestigateWorkflow",
                     "StartWorkflow:ResearchWorkflow", "research run"]
    gate = next(sp for sp in spans if sp["name"] == "gate plan")["attributes"]
    assert (gate["deepsci.gate.decision"], gate["deepsci.gate.reviewer"], gate["deepsci.gate.version"]) == \
        ("approve", "auto", 1)


async def test_model_calls_carry_genai_attributes_and_the_billed_tokens(observed):
    calls = [sp for sp in observed.spans if sp["name"].startswith("chat ")]
    assert calls
    for sp in calls:
        a = sp["attributes"]
        assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
        assert a["gen_ai.request.model"] in MODEL_PRICES and a["gen_ai.response.model"]
        assert a["gen_ai.response.finish_reasons"] == ["stop"]
    tokens_in = sum(sp["attributes"]["gen_ai.usage.input_tokens"] for sp in calls)
    tokens_out = sum(sp["attributes"]["gen_ai.usage.output_tokens"] for sp in calls)
    assert (tokens_in, tokens_out) == (observed.billed.tokens_in, observed.billed.tokens_out) != (0, 0)
    assert sum(sp["attributes"]["deepsci.cost_usd"] for sp in calls) == pytest.approx(
        observed.result.stats.cost_usd, abs=1e-9)


async def test_metrics_page_counts_the_run_and_its_tokens(observed):
    m = observed.metrics

    def total(name: str, **labels: str) -> float:
        return _total(m, name, **labels)

    assert total("deepsci_runs_started_total") >= 1
    assert total("deepsci_runs_finished_total", outcome="published") >= 1
    assert total("gen_ai_client_token_usage_sum", gen_ai_token_type="input") == observed.billed.tokens_in
    assert total("gen_ai_client_token_usage_sum", gen_ai_token_type="output") == observed.billed.tokens_out
    assert total("deepsci_citations_total", outcome="kept") >= 1
    assert total("deepsci_gate_decisions_total", gate="plan", decision="approve") >= 1
    assert any(n.startswith("temporal_") for n, _ in m), "the SDK's own runtime metrics are missing"


async def test_the_web_ui_shows_summaries_and_the_trace_id(observed):
    desc = await observed.handle.describe()
    assert await desc.static_summary() == QUESTION
    assert "**Reviewers:** auto-approve" in (await desc.static_details() or "")
    assert desc.typed_search_attributes.get(sa.TRACE_ID) == observed.trace_id
    conv = DATA_CONVERTER.payload_converter
    summaries = [conv.from_payload(e.user_metadata.summary, str) for e in observed.history.events
                 if e.HasField("activity_task_scheduled_event_attributes")]
    assert summaries[0] == f"plan {QUESTION}"
    assert any(s.startswith("draft sq1: ") for s in summaries), summaries
    assert any(s.startswith("publish research-otel-") for s in summaries), summaries


async def test_replaying_a_traced_history_emits_no_spans(observed, spans_in_memory):
    spans_in_memory.clear()
    replayer = Replayer(workflows=[ResearchWorkflow, InvestigateWorkflow], data_converter=DATA_CONVERTER,
                        interceptors=tracing_interceptors())
    await replayer.replay_workflow(observed.history)
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    assert spans_in_memory.get_finished_spans() == ()


# ---------------------------------------------------------------- a SIGKILLed worker, the same trace

SLOW_S = 5  # the slow page's answer time: the kill lands while the first attempt waits for it


def _worker_env(env, settings, prefix: str, phoenix: str, doc, sx, home) -> dict[str, str]:
    """A `python -m workers.main` environment: the test servers, the fakes, spans to Phoenix."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DEEPSCI_"))},
            "DEEPSCI_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "DATABASE_URL": settings.dsn, "DEEPSCI_HOME": str(home), "DEEPSCI_QDRANT_PATH": str(home / "qdrant"),
            "DEEPSCI_TASK_QUEUE_PREFIX": prefix, "DEEPSCI_METRICS_PORT": "0",
            "DEEPSCI_SEARXNG_URL": sx.url, "DEEPSCI_FETCH_ALLOW_HOSTS": f"127.0.0.1:{doc.port}",
            "DEEPSCI_SEARCH_RATE_PER_S": '{"searxng": 1000}',
            # Spans leave within 0.2 s of ending: what the killed worker ended before the kill
            # (the workflow's StartActivity span, the retry's parent) has reached Phoenix by then.
            "OTEL_EXPORTER_OTLP_ENDPOINT": phoenix, "OTEL_BSP_SCHEDULE_DELAY": "200"}


async def _start_worker(argv_env: dict[str, str], log_path) -> subprocess.Popen:
    log = open(log_path, "wb")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen([sys.executable, "-m", "workers.main"], env=argv_env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    for _ in range(1200):
        if b"worker polling" in log_path.read_bytes():
            return proc
        if proc.poll() is not None:
            break
        await asyncio.sleep(0.05)
    raise AssertionError(f"the worker did not start:\n{log_path.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


async def _slow_fetch(client: Client, run_id: str) -> tuple[str, str, int]:
    """(child workflow id, activity id, attempt that completed it) of the fetch_parse of /slow."""
    run = await client.get_workflow_handle(run_id).fetch_history()
    children = [e.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
                for e in run.events if e.HasField("child_workflow_execution_started_event_attributes")]
    for wf in children:
        scheduled: dict[int, str] = {}
        for e in (await client.get_workflow_handle(wf).fetch_history()).events:
            if e.HasField("activity_task_scheduled_event_attributes"):
                a = e.activity_task_scheduled_event_attributes
                if a.activity_type.name == "fetch_parse" and b"/slow" in a.input.payloads[0].data:
                    scheduled[e.event_id] = a.activity_id
            elif e.HasField("activity_task_started_event_attributes"):
                st = e.activity_task_started_event_attributes
                if st.scheduled_event_id in scheduled:
                    return wf, scheduled[st.scheduled_event_id], st.attempt
    raise AssertionError(f"no fetch_parse of the slow page in the run's children {children}")


async def test_a_sigkilled_activity_is_retried_in_the_same_trace(env, settings, phoenix, spans_in_memory,
                                                                 tmp_path):
    """A worker process is SIGKILLed while fetch_parse waits on a slow page; a fresh worker process
    retries it after the heartbeat timeout. The retried attempt's RunActivity span (the killed
    attempt never ended, so never left its process) must be in the run's trace, under its spans."""
    prefix = f"k{uuid.uuid4().hex[:10]}"
    doc, sx = DocServer().start(), SearxngFake().start()
    sx.results = [{"url": f"{doc.url}/slow?s={SLOW_S}", "title": "Slow", "content": ""},
                  {"url": doc.page_url("retries"), "title": "Retries", "content": ""}]
    wenv = _worker_env(env, settings, prefix, phoenix, doc, sx, tmp_path)
    client = await Client.connect(env.client.service_client.config.target_host, namespace="default",
                                  data_converter=DATA_CONVERTER, interceptors=tracing_interceptors())
    first = await _start_worker(wenv, tmp_path / "worker-1.log")
    second = None
    try:
        req = ResearchRequest(question=QUESTION, search=["searxng"], max_sub_questions=1, auto_approve=True)
        s = settings.model_copy(update={"task_queue_prefix": prefix})
        started = await start_or_attach(client, s, req, f"research-kill-{uuid.uuid4().hex[:8]}")
        assert started.trace_id
        for _ in range(600):  # the first attempt is waiting on the slow page...
            if any(path.startswith("/slow") for _, path in doc.requests):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the slow page was never fetched:\n{(tmp_path / 'worker-1.log').read_text()[-3000:]}")
        await asyncio.sleep(1)  # ...and the killed worker's ended spans have left it
        os.killpg(first.pid, signal.SIGKILL)
        killed_at = time.time_ns()
        first.wait(10)
        second = await _start_worker(wenv, tmp_path / "worker-2.log")
        result = await asyncio.wait_for(started.handle.result(), 120)
        assert result.status == "published", result.message
        child, activity_id, attempt = await _slow_fetch(client, started.handle.id)
        assert attempt >= 2, "the slow fetch was not retried: the kill missed it"

        def retried(sp: dict) -> bool:
            a = sp["attributes"]
            return (sp["name"] == "RunActivity:fetch_parse" and a.get("temporalWorkflowID") == child
                    and a.get("temporalActivityID") == activity_id)

        trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
        spans: list[dict] = []
        hits: list[dict] = []
        for _ in range(120):  # the new worker exports within 0.2 s; Phoenix ingests asynchronously
            every = _all_spans(phoenix)
            hits = [sp for sp in every if retried(sp)]
            spans = [sp for sp in every if sp["context"]["trace_id"] == started.trace_id]
            if hits and {"research run", "RunActivity:publish"} <= {sp["name"] for sp in spans}:
                break
            await asyncio.sleep(0.5)
    finally:
        for proc in (first, second):
            if proc is not None:
                _stop(proc)
        doc.stop()
        sx.stop()

    # Searched across the whole project: a retry that started a trace of its own is found too.
    assert len(hits) == 1, f"{len(hits)} RunActivity:fetch_parse spans of the slow fetch reached Phoenix"
    attempt_span = hits[0]
    assert attempt_span["context"]["trace_id"] == started.trace_id
    assert _iso_ns(attempt_span["start_time"]) > killed_at
    by_id = {sp["context"]["span_id"]: sp for sp in spans}
    chain, sp = [], attempt_span
    while sp["parent_id"]:
        assert sp["parent_id"] in by_id, f"{sp['name']} lost its parent (chain so far: {chain})"
        sp = by_id[sp["parent_id"]]
        chain.append(sp["name"])
    assert chain[0] == "StartActivity:fetch_parse" and chain[-1] == "research run", chain
    assert "StartChildWorkflow:InvestigateWorkflow" in chain
    # the retried attempt's own work hangs under it: the fetch of the slow page
    fetches = [x for x in spans if x["name"] == "fetch" and x["parent_id"] == attempt_span["context"]["span_id"]]
    assert fetches, "the retried attempt has no fetch span"


def _iso_ns(ts: str) -> int:
    from datetime import datetime

    dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000
