"""What a weak local model (llama.cpp, Ollama) gets wrong, against the fake server's weak-model knobs:
runaway lists, ids written `1` or `[E1]`, cut-off replies that the repair must not resend whole."""

from __future__ import annotations

import json
import uuid

import pytest
from pydantic import BaseModel, ConfigDict
from temporalio.exceptions import ApplicationError

from deepsci.engine.model import ModelEngine, block_id
from deepsci.llm.client import REPAIR_ECHO_CHARS, LlmClient
from deepsci.llm.prompts import draft_prompt
from deepsci.llm.schemas import SCHEMAS
from deepsci.llm.structured import strict_schema
from tests.fakes.openai_server import FakeOpenAI

TEXT = ("A circuit breaker protects model providers by stopping calls after repeated failures. "
        "Full jitter randomises each retry delay so clients do not retry in lockstep.")


def client(settings, store, fake) -> LlmClient:
    return LlmClient(settings.model_copy(update={
        "openai_base_url": fake.base_url, "openai_api_key": "sk-test", "llm_model": "fake-strong",
        "llm_prices": {}, "llm_timeout_s": 5.0, "llm_max_output_tokens": 1000}), store)


@pytest.mark.parametrize("raw", ["E2", "2", "e2", "[E2]", "E 2", " E-2 ", "(2)"])
def test_evidence_ids_in_their_obvious_variants_name_the_same_block(raw):
    assert block_id(raw, "E") == "E2"


@pytest.mark.parametrize("raw", ["S2", "E2b", "two", ""])
def test_an_id_of_another_kind_names_no_block(raw):
    assert block_id(raw, "E") != "E2"


def test_every_list_and_string_a_model_writes_is_bounded_in_the_strict_schema():
    def walk(node, path):
        if isinstance(node, dict):
            if node.get("type") == "array":
                assert "maxItems" in node, path
            if node.get("type") == "string":
                assert "maxLength" in node, path
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for v in node:
                walk(v, path)

    for name, model in SCHEMAS.items():
        walk(strict_schema(model, string_limits=True), name)
        # OpenAI's strict mode: lists still bounded, no string length keywords sent
        assert "maxLength" not in json.dumps(strict_schema(model, string_limits=False)), name
        assert "maxItems" in json.dumps(strict_schema(model, string_limits=False)), name


def test_a_runaway_weak_model_under_the_bounded_schema_still_drafts_checked_claims(settings, store):
    with FakeOpenAI(runaway=True, wrong_ids=True) as fake:
        engine = ModelEngine(client(settings, store, fake))
        res = engine.draft("How do breakers work?", "How do circuit breakers protect model providers?",
                           [("p1", {"title": "Breakers", "locator": "p. 1", "text": TEXT})], [],
                           f"test/{uuid.uuid4().hex}")
    assert [c.status for c in fake.chat_calls()] == [200]  # one call: the bound ended the list in time
    assert res.sentences and not res.dropped  # ids came back as "1", "e1", ... and still count
    assert all(s["point_id"] == "p1" for s in res.sentences)


class _Claim(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    evidence_id: str
    quote: str


class DraftOut(BaseModel):  # noqa: D101 - the schema as it was before the bounds: nothing stops a list
    model_config = ConfigDict(extra="forbid")
    claims: list[_Claim]


def test_a_repair_does_not_send_a_runaway_reply_back_whole(settings, store):
    system, user = draft_prompt("Q?", "How do circuit breakers protect model providers?",
                                [{"id": "E1", "title": "t", "locator": "p. 1", "text": TEXT}], [])
    with FakeOpenAI(runaway=True) as fake:
        with pytest.raises(ApplicationError) as failed:
            client(settings, store, fake).structured(step="draft", system=system, user=user, schema=DraftOut,
                                                     cache_key=f"test/{uuid.uuid4().hex}")
    assert "cut off" in failed.value.message
    assert fake.resent, "the cut-off reply was repaired"
    # max_tokens 1000 let the runaway reply reach ~4000 chars; the repair sent back at most the cut
    assert max(fake.resent) <= REPAIR_ECHO_CHARS + 100 < 4 * 1000
