"""OpenAI-compatible embeddings against the fake server: batching, dimensions, the Postgres cache,
error mapping, and a worker's dependencies (index, retrieve, corpus search) built on them."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import numpy as np
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.deps import build_deps
from activities.indexing import IndexActivities
from deepsci.contracts import IndexInput, RetrieveInput
from deepsci.embedding import CachedEmbedder, LocalE5Embedder, OpenAIEmbedder
from deepsci.llm.client import LlmClient
from tests.fakes.openai_server import FakeOpenAI


def embed_settings(settings, fake, **over):
    return settings.model_copy(update={
        "openai_base_url": fake.base_url, "openai_api_key": "sk-test", "llm_model": "fake-strong",
        "openai_embedding_model": "fake-embed", "openai_embedding_batch": 3, **over})


def texts(n: int) -> list[str]:
    tag = uuid.uuid4().hex  # fresh texts: the embedding cache is shared by the whole session
    return [f"passage {i} about circuit breakers {tag}" for i in range(n)]


def test_passages_go_in_batches_and_come_back_normalized(settings, fake):
    emb = OpenAIEmbedder(embed_settings(settings, fake))
    vecs = emb.passages(texts(7))
    assert fake.embedding_inputs == [3, 3, 1]
    assert vecs.shape == (7, 256) and vecs.dtype == np.float32 and emb.dim == 256
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert emb.passages([]).shape == (0, 256)


def test_dimensions_are_sent_and_name_the_vector_space(settings, fake):
    emb = OpenAIEmbedder(embed_settings(settings, fake, openai_embedding_dimensions=64))
    assert emb.dim == 64 and emb.model == "fake-embed@64" and not fake.requests  # no probe needed
    assert emb.query("circuit breakers").shape == (64,)  # the fake answers 256 unless asked
    unknown = OpenAIEmbedder(embed_settings(settings, fake))
    assert unknown.model == "fake-embed" and unknown.dim == 256  # learned from a first response


def test_vectors_make_retrieval_meaningful(settings, fake):
    emb = OpenAIEmbedder(embed_settings(settings, fake))
    docs = emb.passages(["Full jitter randomises each retry delay.",
                         "A circuit breaker stops calls to a failing model provider."])
    scores = docs @ emb.query("what does a circuit breaker do for a model provider")
    assert scores[1] > scores[0]


def test_cached_embedder_embeds_each_text_once(settings, store, fake):
    s = embed_settings(settings, fake, openai_embedding_dimensions=32)
    cached = CachedEmbedder(OpenAIEmbedder(s), store)
    batch = texts(4)
    first = cached.passages(batch)
    again = CachedEmbedder(OpenAIEmbedder(s), store).passages(batch[::-1])
    assert np.array_equal(again, first[::-1])
    assert sum(fake.embedding_inputs) == 4
    q = cached.query(batch[0])
    assert np.array_equal(cached.query(batch[0]), q) and sum(fake.embedding_inputs) == 5


@pytest.mark.parametrize(("fault", "kind", "retryable"), [
    ("401", "LlmAuthError", False), ("insufficient_quota", "LlmQuotaExhausted", False),
    ("500", "LlmUnavailable", True), ("429", "LlmRateLimited", True),
])
def test_errors_map_like_the_chat_client(settings, fake, fault, kind, retryable):
    fake.faults, fake.retry_after = [fault], "3"
    with pytest.raises(ApplicationError) as info:
        OpenAIEmbedder(embed_settings(settings, fake)).passages(["x"])
    assert info.value.type == kind and info.value.non_retryable is not retryable
    if fault == "429":
        assert info.value.next_retry_delay == timedelta(seconds=3)


def test_unknown_embedding_model_is_a_config_error(settings):
    with FakeOpenAI(models=["fake-strong"]) as fake, pytest.raises(ApplicationError) as info:
        OpenAIEmbedder(embed_settings(settings, fake)).query("x")
    assert info.value.type == "LlmConfigError" and info.value.non_retryable


def test_offline_settings_keep_the_local_model_and_no_llm_client(deps):
    assert isinstance(deps.embedder.inner, LocalE5Embedder) and deps.llm is None


def test_worker_deps_on_openai_index_retrieve_and_search(settings, fake, tmp_path):
    s = embed_settings(settings, fake, openai_embedding_dimensions=48, openai_embedding_batch=64,
                       qdrant_path=tmp_path / "qdrant")  # local mode: one client per folder
    d = build_deps(s)
    try:
        assert isinstance(d.llm, LlmClient) and isinstance(d.embedder.inner, OpenAIEmbedder)
        assert d.vectors.collection == "chunks_fake_embed_48" and d.vectors.dim == 48
        text = ("A circuit breaker stops calls to a failing model provider. "
                f"Full jitter spreads retries over time. Marker {uuid.uuid4().hex}.")
        digest = hashlib.sha256(text.encode()).hexdigest()
        d.store.put_document(digest, "file:///doc.txt", "Doc", "txt", text,
                             [{"locator": "p. 1", "start": 0, "end": len(text)}], len(text))
        env = ActivityEnvironment()
        acts = IndexActivities(d)
        indexed = env.run(acts.index, IndexInput(idempotency_key="t/index", content_hashes=[digest]))
        assert indexed.chunks_indexed >= 1 and d.vectors.count([digest]) == indexed.chunks_indexed
        got = env.run(acts.retrieve, RetrieveInput(idempotency_key="t/retrieve", query="circuit breaker",
                                                   content_hashes=[digest], limit=2))
        assert got.evidence and "circuit breaker" in got.evidence[0].snippet
        hits = env.run(lambda: d.corpus.search(str(s.corpus_dir), "circuit breakers model providers", 3))
        assert len(hits) == 3 and all(h.uri.startswith("file://") for h in hits)
    finally:
        d.vectors.client.close()
