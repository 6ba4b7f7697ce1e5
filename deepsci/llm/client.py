"""The chat model client: routing, strict structured outputs with one repair, cost, and a reply cache.

Temporal owns retries: one HTTP request per call, errors become typed ApplicationErrors
(deepsci/llm/provider.py). A reply is a paid side effect, so every 200 reply is recorded in
Postgres under (cache_key, call index) before it is parsed: a retried activity replays it
instead of paying for it again, and reports its cost once.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, TypeVar

import openai
from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from deepsci.contracts import LlmUsage
from deepsci.errors import ErrorType
from deepsci.heartbeat import heartbeating
from deepsci.llm.provider import make_openai_client, provider_error
from deepsci.llm.structured import ReplyError, parse_reply, strict_schema
from deepsci.observe import metrics as m
from deepsci.observe import span
from deepsci.settings import Settings
from deepsci.store import ArtifactStore

__all__ = ["LlmClient", "cost_usd"]

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)

_CHEAP_STEPS = frozenset({"plan", "critique"})
_STRONG_STEPS = frozenset({"draft", "aggregate"})
MAX_CALLS_PER_STEP = 3  # per activity attempt: the first ask, one repair, one more ask after a garbled reply
_REPAIR = ("Your previous reply was rejected: {error}\n"
           "Answer again with only the JSON object that matches the schema.")
# What a repair sends back of the rejected reply and of the error: a runaway reply resent whole
# fills the context and the next reply runs away too (every attempt then times out).
REPAIR_ECHO_CHARS = 2000
REPAIR_ERROR_CHARS = 800


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... cut here: {len(text) - limit} more characters not shown]"


def cost_usd(prices: dict[str, list[float]], model: str, tokens_in: int, tokens_out: int) -> float | None:
    """USD for one call at prices per million tokens [input, output]; None for an unknown model."""
    price = prices.get(model)
    if price is None:
        return None
    return tokens_in * price[0] / 1e6 + tokens_out * (price[1] if len(price) > 1 else 0.0) / 1e6


@dataclass(frozen=True)
class _Reply:
    content: str
    problem: str | None  # refusal or truncation: the reply is unusable whatever its content
    usage: LlmUsage


def _current_attempt() -> int:
    return activity.info().attempt if activity.in_activity() else 1


class LlmClient:
    def __init__(self, settings: Settings, store: ArtifactStore):
        self.settings, self.store = settings, store
        self._client = make_openai_client(settings)
        self._unpriced: set[str] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------ routing

    def model_for(self, step: str, attempt: int) -> str:
        """Cheap model for plan/critique, strong for draft/aggregate; the fallback model once an
        activity has failed llm_fallback_after_attempts times (the primary may be down)."""
        s = self.settings
        if s.llm_fallback_model and attempt > s.llm_fallback_after_attempts:
            log.warning("llm %s: attempt %d > %d, using fallback model %s",
                        step, attempt, s.llm_fallback_after_attempts, s.llm_fallback_model)
            return s.llm_fallback_model
        if step in _CHEAP_STEPS:
            return s.llm_cheap_model or s.llm_model
        if step in _STRONG_STEPS:
            return s.llm_strong_model or s.llm_model
        return s.llm_model

    # ------------------------------------------------------------ the one public call

    def structured(self, *, step: str, system: str, user: str, schema: type[T], cache_key: str,
                   attempt: int | None = None) -> tuple[T, LlmUsage]:
        """Ask for an instance of ``schema``; one repair round on an invalid reply (see the loop).

        ``cache_key`` must be stable across retries of the same logical call (the activity's
        idempotency key): the prompts are not, since their fence boundary is random.
        """
        attempt = _current_attempt() if attempt is None else attempt
        model = self.model_for(step, attempt)
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        usage = LlmUsage()
        repairs = 0
        # Each activity attempt may go one call further: the calls before replay from the cache.
        limit = MAX_CALLS_PER_STEP + attempt - 1
        for index in range(limit):
            # Call ``index`` of this chain is cached under (cache_key, index): which call comes next
            # depends only on earlier replies, so a retried activity walks the same chain for free.
            reply = self._call(model, messages, schema, _key(cache_key, index), step)
            usage = usage.plus(reply.usage)
            try:
                return self._parse(reply, schema), usage
            except ReplyError as exc:
                error = exc
            # A wrong answer (valid JSON of the wrong shape, a refusal) gets one repair; a garbled
            # reply (no parseable JSON: cut off, mangled by a proxy) is a glitch, asked again.
            if not error.garbled:
                repairs += 1
                if repairs > 1:
                    raise ApplicationError(
                        f"llm {step}: model {model} did not return a valid {schema.__name__} after one "
                        f"repair: {error}", type=ErrorType.SCHEMA_VIOLATION, non_retryable=True)
            if index + 1 == limit:
                break
            log.info("llm %s: %s reply rejected, asking again: %s", step, model, str(error)[:300])
            messages = messages[:2] + [
                {"role": "assistant", "content": _cut(reply.content, REPAIR_ECHO_CHARS)},
                {"role": "user", "content": _REPAIR.format(error=_cut(str(error), REPAIR_ERROR_CHARS))}]
        # Only garbled replies in a row: retryable, like any transport fault; the next attempt
        # replays these from the cache and asks once more (bounded by the llm policy's attempts).
        raise ApplicationError(f"llm {step}: model {model} replied {limit} times without valid JSON: {error}",
                               type=ErrorType.LLM_GARBLED_REPLY)

    # ------------------------------------------------------------ one billed HTTP call

    @staticmethod
    def _parse(reply: _Reply, schema: type[T]) -> T:
        if reply.problem:
            raise ReplyError(reply.problem)
        return parse_reply(reply.content, schema)

    def _call(self, model: str, messages: list[dict], schema: type[BaseModel], key: str,
              step: str = "") -> _Reply:
        hit = self.store.llm_cache_get(key)
        if hit is not None:  # replayed from the cache: not a model call, no span, no tokens
            u = hit["usage"]
            return _Reply(hit["content"], u.get("problem"), LlmUsage.model_validate(u))
        # One span per billed call, named and attributed as the OTel GenAI conventions say.
        with span(f"chat {model}", **{"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                      "gen_ai.request.model": model, "deepsci.step": step}) as sp:
            started = time.perf_counter()
            try:
                reply, resp_model, finish = self._request(model, messages, schema, key)
            finally:
                m.OPERATION_DURATION.record(time.perf_counter() - started, _metric_attrs(model, step))
            u = reply.usage
            sp.set_attributes({"gen_ai.response.model": resp_model, "gen_ai.usage.input_tokens": u.tokens_in,
                               "gen_ai.usage.output_tokens": u.tokens_out,
                               "gen_ai.response.finish_reasons": finish, "deepsci.cost_usd": u.cost_usd})
        labels = _metric_attrs(model, step)
        m.TOKENS.record(u.tokens_in, {**labels, "gen_ai.token.type": "input"})
        m.TOKENS.record(u.tokens_out, {**labels, "gen_ai.token.type": "output"})
        m.LLM_COST.add(u.cost_usd, labels)
        return reply

    def _request(self, model: str, messages: list[dict], schema: type[BaseModel],
                 key: str) -> tuple[_Reply, str, list[str]]:
        """One HTTP request; the reply is recorded before it is parsed. Also returns the model the
        server says answered and the finish reasons."""
        try:
            # max_tokens or max_completion_tokens, as the server wants (reasoning models); one dict,
            # since the SDK's overloads cannot type a parameter chosen at run time.
            request: dict[str, Any] = {
                "model": model, "messages": messages,
                "response_format": {"type": "json_schema", "json_schema": {
                    "name": schema.__name__, "schema": strict_schema(schema, self.settings.llm_schema_string_limits),
                    "strict": True}},
                self.settings.llm_max_tokens_param: self.settings.llm_max_output_tokens,
            }
            with heartbeating():  # a reply can take longer than the llm policy's heartbeat timeout
                resp = self._client.chat.completions.create(**request)
        except openai.OpenAIError as exc:
            raise provider_error(exc, base_url=self.settings.openai_base_url, model=model) from exc
        usage = self._usage(model, resp.usage)
        choice = resp.choices[0] if resp.choices else None
        content = (choice.message.content if choice else None) or ""
        problem = None
        if choice is None:
            problem = "the reply had no choices"
        elif choice.message.refusal:
            problem = f"the model refused: {choice.message.refusal}"
        elif choice.finish_reason == "length":
            cap = f"{self.settings.llm_max_tokens_param}={self.settings.llm_max_output_tokens}"
            problem = f"the reply was cut off at {cap}; answer more briefly"
        self.store.llm_cache_put(key, model, content, {**usage.model_dump(), "problem": problem})
        finish = [str(c.finish_reason) for c in resp.choices if c.finish_reason]
        return _Reply(content, problem, usage), str(getattr(resp, "model", None) or model), finish

    def _usage(self, model: str, u) -> LlmUsage:
        tin = int(getattr(u, "prompt_tokens", 0) or 0)
        tout = int(getattr(u, "completion_tokens", 0) or 0)
        cost = cost_usd(self.settings.llm_prices, model, tin, tout)
        if cost is None:
            with self._lock:
                if model not in self._unpriced:
                    self._unpriced.add(model)
                    log.warning("llm: no price for model %s in llm_prices; its calls count as $0", model)
            cost = 0.0
        return LlmUsage(calls=1, tokens_in=tin, tokens_out=tout, cost_usd=round(cost, 8), by_model={model: 1})


def _metric_attrs(model: str, step: str) -> dict[str, str]:
    return {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": model,
            "deepsci_step": step}


def _key(cache_key: str, index: int) -> str:
    return hashlib.sha256(f"{cache_key}\x00{index}".encode()).hexdigest()
