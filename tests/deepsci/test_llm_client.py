"""The chat model client against a fake OpenAI-compatible server over loopback (real openai client,
real Postgres): structured replies, repair, error mapping, cost equal to what the provider billed,
the reply cache and model routing."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from pydantic import BaseModel, Field
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from deepsci.errors import NON_RETRYABLE_TYPES
from deepsci.llm.client import LlmClient
from deepsci.llm.prompts import aggregate_prompt, critique_prompt, draft_prompt, plan_prompt
from deepsci.llm.schemas import SCHEMAS, AggregateOut, CritiqueOut, DraftOut, PlanOut
from deepsci.llm.structured import clean_reply, strict_schema
from tests.fakes.openai_server import CONTEXT_ERRORS, HALLUCINATED_QUOTE, FakeOpenAI

PRICES = {"fake-cheap": [1.0, 2.0], "fake-strong": [3.0, 6.0], "fake-fallback": [0.5, 0.5]}
QUESTION = "How do circuit breakers protect model providers?"
EVIDENCE = [
    {"id": "E1", "title": "Circuit breakers", "locator": "p. 1",
     "text": "A circuit breaker protects model providers by stopping calls after repeated failures. "
             "The weather was pleasant that day."},
    {"id": "E2", "title": "Retries", "locator": "p. 2",
     "text": "Full jitter randomises each retry delay so clients do not retry in lockstep."},
]


def make_client(settings, store, fake, **over) -> LlmClient:
    s = settings.model_copy(update={
        "openai_base_url": fake.base_url, "openai_api_key": "sk-test", "llm_model": "fake-default",
        "llm_cheap_model": "fake-cheap", "llm_strong_model": "fake-strong", "llm_prices": PRICES,
        "llm_timeout_s": 5.0, **over})
    return LlmClient(s, store)


def key() -> str:
    return f"test/{uuid.uuid4().hex}"


def plan(client: LlmClient, cache_key: str | None = None, **kw):
    system, user = plan_prompt(QUESTION, 2)
    return client.structured(step="plan", system=system, user=user, schema=PlanOut,
                             cache_key=cache_key or key(), **kw)


def assert_usage_is_what_was_billed(usage, fake, calls: int) -> None:
    billed = fake.billed_totals()
    assert usage.calls == billed.calls == calls
    assert (usage.tokens_in, usage.tokens_out) == (billed.tokens_in, billed.tokens_out)
    assert usage.cost_usd == pytest.approx(fake.billed_cost(PRICES), abs=1e-8)
    assert usage.cost_usd > 0


def fails(fn) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        fn()
    return info.value


# ---------------------------------------------------------------- replies


def test_structured_reply_costs_what_the_provider_billed(settings, store, fake):
    out, usage = plan(make_client(settings, store, fake))
    assert out.sub_questions[0] == QUESTION and len(out.sub_questions) == 2
    assert usage.by_model == {"fake-cheap": 1}
    assert_usage_is_what_was_billed(usage, fake, calls=1)
    sent = fake.chat_calls()[0]
    assert (sent.model, sent.schema) == ("fake-cheap", "PlanOut")


def test_reasoning_tags_and_code_fences_are_stripped(settings, store, fake):
    fake.faults = ["think"]
    out, usage = plan(make_client(settings, store, fake))
    assert out.sub_questions[0] == QUESTION and usage.calls == 1
    assert clean_reply('<think>hmm {"a": 1}') == '{"a": 1}'  # cut off mid-thought, JSON after
    assert clean_reply('reasoning only the end tag</think>\n{"a": 2}') == '{"a": 2}'


@pytest.mark.parametrize("fault", ["wrong_schema", "malformed", "refusal", "length"])
def test_a_bad_reply_is_repaired_once_and_both_calls_are_paid(settings, store, fake, fault):
    fake.faults = [fault]
    out, usage = plan(make_client(settings, store, fake))
    assert out.sub_questions[0] == QUESTION
    assert_usage_is_what_was_billed(usage, fake, calls=2)


def test_a_reply_still_wrong_after_repair_fails_for_good_with_the_validation_error(settings, store, fake):
    fake.faults = ["wrong_schema", "wrong_schema"]
    err = fails(lambda: plan(make_client(settings, store, fake)))
    assert err.type == "SchemaViolation" and err.non_retryable
    assert "PlanOut" in err.message and "sub_questions" in err.message and "Field required" in err.message
    assert len(fake.chat_calls(200)) == 2 and fake.billed_totals().calls == 2


def test_garbled_replies_in_a_row_are_retried_and_the_next_attempt_asks_once_more(settings, store, fake):
    fake.faults = ["malformed", "malformed", "malformed"]
    client, k = make_client(settings, store, fake), key()
    err = fails(lambda: client.structured(step="plan", system="s", user=plan_prompt(QUESTION, 3)[1],
                                          schema=PlanOut, cache_key=k, attempt=1))
    assert err.type == "LlmGarbledReply" and not err.non_retryable and len(fake.chat_calls(200)) == 3
    # attempt 2 replays the three paid replies from the cache and makes one new call
    out, usage = client.structured(step="plan", system="s", user=plan_prompt(QUESTION, 3)[1], schema=PlanOut,
                                   cache_key=k, attempt=2)
    assert out.sub_questions and len(fake.chat_calls(200)) == 4
    assert_usage_is_what_was_billed(usage, fake, calls=4)


def test_a_garbled_reply_then_a_wrong_one_still_gets_its_one_repair(settings, store, fake):
    fake.faults = ["malformed", "wrong_schema"]
    out, usage = plan(make_client(settings, store, fake))
    assert out.sub_questions and usage.calls == 3


# ---------------------------------------------------------------- errors


def test_wrong_key_fails_fast_naming_the_setting_after_one_request(settings, store, fake):
    fake.api_key = "sk-right"
    err = fails(lambda: plan(make_client(settings, store, fake, openai_api_key="sk-wrong")))
    assert err.type == "LlmAuthError" and err.non_retryable
    assert "OPENAI_API_KEY" in err.message and fake.base_url in err.message
    assert len(fake.requests) == 1 and not fake.billed


def test_rate_limit_retries_after_what_the_provider_asked(settings, store, fake):
    fake.faults, fake.retry_after = ["429"], "7"
    err = fails(lambda: plan(make_client(settings, store, fake)))
    assert not err.non_retryable and err.next_retry_delay == timedelta(seconds=7)
    assert not fake.billed


def test_exhausted_quota_is_not_retried_by_temporal(settings, store, fake):
    fake.faults = ["insufficient_quota"]
    err = fails(lambda: plan(make_client(settings, store, fake)))
    assert err.type == "LlmQuotaExhausted" and err.non_retryable
    assert err.type in NON_RETRYABLE_TYPES


def test_server_error_is_retryable_and_a_retry_pays_once(settings, store, fake):
    fake.faults = ["500"]
    client, k = make_client(settings, store, fake), key()
    err = fails(lambda: plan(client, k))
    assert err.type == "LlmUnavailable" and not err.non_retryable
    out, usage = plan(client, k)  # the activity's next attempt
    assert_usage_is_what_was_billed(usage, fake, calls=1)


def test_a_reply_slower_than_the_timeout_is_retryable_and_unbilled(settings, store, fake):
    fake.faults, fake.slow_s = ["slow"], 1.5
    started = time.monotonic()
    err = fails(lambda: plan(make_client(settings, store, fake, llm_timeout_s=0.5)))
    assert time.monotonic() - started < 1.4
    assert err.type == "LlmUnavailable" and not err.non_retryable
    deadline = time.monotonic() + 5
    while not fake.chat_calls() and time.monotonic() < deadline:  # the fake finishes sleeping
        time.sleep(0.05)
    assert [c.status for c in fake.chat_calls()] == [499] and not fake.billed


def test_context_too_long_says_what_to_shrink(settings, store, fake):
    fake.faults = ["context_length"]
    err = fails(lambda: plan(make_client(settings, store, fake)))
    assert err.type == "LlmContextTooLong" and err.non_retryable
    assert "evidence_per_sub_question" in err.message and "chunk_chars" in err.message


@pytest.mark.parametrize("fault", sorted(CONTEXT_ERRORS))
def test_every_servers_context_overflow_is_context_too_long(settings, store, fake, fault):
    """llama.cpp, vLLM (both engines) and Ollama word it differently; each gets the same advice, once."""
    fake.faults = [fault]
    err = fails(lambda: plan(make_client(settings, store, fake)))
    assert err.type == "LlmContextTooLong" and err.non_retryable, f"{err.type}: {err.message}"
    assert "evidence_per_sub_question" in err.message
    assert len(fake.chat_calls()) == 1 and not fake.billed


@pytest.mark.parametrize(("fault", "kind", "hint"), [("403", "LlmAuthError", "permission"),
                                                     ("400", "LlmConfigError", "400")])
def test_forbidden_and_bad_request_fail_fast_in_one_request(settings, store, fake, fault, kind, hint):
    fake.faults = [fault]
    err = fails(lambda: plan(make_client(settings, store, fake)))
    assert err.type == kind and err.non_retryable and hint in err.message.lower()
    assert len(fake.chat_calls()) == 1 and not fake.billed


def test_unknown_model_is_a_config_error(settings, store):
    with FakeOpenAI(models=["fake-strong"]) as fake:
        err = fails(lambda: plan(make_client(settings, store, fake)))
    assert err.type == "LlmConfigError" and err.non_retryable and "model name" in err.message


def test_unreachable_server_is_retryable(settings, store):
    fake = FakeOpenAI()
    fake.httpd.server_close()  # nothing listens on the port
    err = fails(lambda: plan(make_client(settings, store, fake)))
    assert err.type == "LlmUnavailable" and not err.non_retryable


# ---------------------------------------------------------------- cache


def test_same_cache_key_replays_the_paid_reply_without_a_request(settings, store, fake):
    client, k = make_client(settings, store, fake), key()
    first, u1 = plan(client, k)
    second, u2 = plan(make_client(settings, store, fake), k)  # another worker, same activity
    assert second == first and u2 == u1
    assert len(fake.chat_calls()) == 1 and fake.billed_totals().calls == 1
    plan(client, key())
    assert len(fake.chat_calls()) == 2


def test_repair_call_is_cached_too(settings, store, fake):
    fake.faults = ["malformed"]
    k = key()
    _, u1 = plan(make_client(settings, store, fake), k)
    _, u2 = plan(make_client(settings, store, fake), k)
    assert u1 == u2 and u1.calls == 2 and len(fake.chat_calls()) == 2


# ---------------------------------------------------------------- routing


def test_cheap_and_strong_steps_and_the_fallback_after_failed_attempts(settings, store, fake):
    client = make_client(settings, store, fake, llm_fallback_model="fake-fallback",
                         llm_fallback_after_attempts=2)
    assert [client.model_for(s, 1) for s in ("plan", "critique", "draft", "aggregate", "other")] == [
        "fake-cheap", "fake-cheap", "fake-strong", "fake-strong", "fake-default"]
    assert client.model_for("draft", 2) == "fake-strong"
    _, usage = plan(client, attempt=3)
    assert usage.by_model == {"fake-fallback": 1} and fake.chat_calls()[0].model == "fake-fallback"
    no_fallback = make_client(settings, store, fake, llm_cheap_model=None)
    assert no_fallback.model_for("plan", 9) == "fake-default"


def test_inside_an_activity_the_attempt_picks_the_model_and_calls_heartbeat(settings, store, fake):
    client = make_client(settings, store, fake, llm_fallback_model="fake-fallback",
                         llm_fallback_after_attempts=2)
    env = ActivityEnvironment()
    env.info = env.info.__class__(**{**env.info.__dict__, "attempt": 3})
    beats: list = []
    env.on_heartbeat = lambda *a: beats.append(a)
    fake.faults = ["wrong_schema"]
    _, usage = env.run(lambda: plan(client))
    assert usage.by_model == {"fake-fallback": 2} and len(beats) == 2


# ---------------------------------------------------------------- schemas and the fake's responders


class _Nested(BaseModel):
    name: str = "x"
    tags: list[str] = Field(default_factory=list)


class _WithDefaults(BaseModel):
    items: list[_Nested]
    note: str | None = None
    count: int = 3


def _objects(node, out: list) -> list:
    if isinstance(node, dict):
        if "properties" in node:
            out.append(node)
        for v in node.values():
            _objects(v, out)
    elif isinstance(node, list):
        for v in node:
            _objects(v, out)
    return out


@pytest.mark.parametrize("model", [*SCHEMAS.values(), _WithDefaults], ids=lambda m: m.__name__)
def test_strict_schema_closes_every_object_and_requires_every_property(model):
    schema = strict_schema(model)
    objects = _objects(schema, [])
    assert objects
    for obj in objects:
        assert obj["additionalProperties"] is False
        assert set(obj["required"]) == set(obj["properties"])
    assert '"default"' not in str(schema).replace("'", '"')


def test_draft_quotes_evidence_verbatim_and_hallucinates_on_request(settings, store, fake):
    client = make_client(settings, store, fake)
    system, user = draft_prompt(QUESTION, "How do circuit breakers protect model providers?", EVIDENCE, [])
    out, usage = client.structured(step="draft", system=system, user=user, schema=DraftOut, cache_key=key())
    assert usage.by_model == {"fake-strong": 1}
    assert [c.evidence_id for c in out.claims] == ["E1"]
    assert out.claims[0].quote in EVIDENCE[0]["text"] and "weather" not in out.claims[0].quote
    system, user = draft_prompt(QUESTION, "Why do quokkas smile?", EVIDENCE, [])
    none, _ = client.structured(step="draft", system=system, user=user, schema=DraftOut, cache_key=key())
    assert none.claims == []
    fake.hallucinate = True
    out, _ = client.structured(step="draft", system=system, user=user, schema=DraftOut, cache_key=key())
    assert [c.quote for c in out.claims] == [HALLUCINATED_QUOTE]


def test_critique_and_aggregate_responders(settings, store, fake):
    client = make_client(settings, store, fake)
    sections = [{"id": "S1", "sub_question": "a?", "claims": ["fine"], "dropped": 0},
                {"id": "S2", "sub_question": "b?", "claims": [], "dropped": 0},
                {"id": "S3", "sub_question": "c?", "claims": ["x"], "dropped": 2}]
    system, user = critique_prompt(QUESTION, sections, "")
    crit, _ = client.structured(step="critique", system=system, user=user, schema=CritiqueOut, cache_key=key())
    assert [f.section_id for f in crit.findings] == ["S2", "S3"]
    system, user = aggregate_prompt(QUESTION, [
        {"id": "S1", "sub_question": "a?", "claims": [(1, "one"), (2, "two")]},
        {"id": "S2", "sub_question": "b?", "claims": []}])
    agg, _ = client.structured(step="aggregate", system=system, user=user, schema=AggregateOut, cache_key=key())
    assert [p.citations for p in agg.summary] == [[1, 2]]
