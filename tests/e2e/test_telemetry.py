"""Observability end to end against real parts: a real Phoenix trace backend (the `observe` extra)
receiving OTLP/HTTP from the real SDK, a model-mode run on the fake OpenAI server, and the
worker's real /metrics page parsed by prometheus_client.

One traced run (module fixture) is checked from every side: one trace connected parent->child
across the client, the workflow, its children and every activity; GenAI attributes whose token
counts equal the fake's bill; the same totals in /metrics; the summaries in the Web UI's
describe/history; and a replay of its history emits no span."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
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


def _trace_spans(phoenix: str, trace_id: str) -> list[dict]:
    out, cursor = [], None
    while True:
        page = _get_json(f"{phoenix}/v1/projects/default/spans?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
        out += [sp for sp in page["data"] if sp["context"]["trace_id"] == trace_id]
        cursor = page.get("next_cursor")
        if not cursor:
            return out


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
