"""Hybrid evidence retrieval ranks lexically over every chunk of the run's sources (up to a pool),
not only over the few chunks the dense search put first."""

from __future__ import annotations

from types import SimpleNamespace

from activities.indexing import IndexActivities
from deepsci.contracts import RetrieveInput
from deepsci.vectors import VectorHit


class _Vectors:
    """Chunks in dense order (best first); ``search`` returns the first ``limit`` like Qdrant does."""

    def __init__(self, hits: list[VectorHit]):
        self.hits = hits
        self.limits: list[int] = []

    def search(self, vector, content_hashes, limit):
        self.limits.append(limit)
        return self.hits[:limit]


def _hit(n: int, text: str, score: float) -> VectorHit:
    return VectorHit(f"p{n}", score, {"content_hash": "h" * 64, "source_id": "h" * 16, "locator": "", "text": text})


def test_a_chunk_low_in_the_dense_order_that_says_the_rare_query_words_is_retrieved():
    filler = [_hit(i, f"Workers process tasks from queues, part {i} of the general overview.", 0.9 - i * 0.001)
              for i in range(60)]
    answer = _hit(99, "Messages can be compressed with brotli, bzip2, gzip, lzma or zstd.", 0.8)
    vectors = _Vectors([*filler, answer])
    acts = IndexActivities(SimpleNamespace(embedder=SimpleNamespace(query=lambda q: None), vectors=vectors))

    got = acts._retrieve(RetrieveInput(idempotency_key="k", query="Which compression schemes: brotli or bzip2?",
                                       content_hashes=["h" * 64], limit=6))

    assert "p99" in [e.point_id for e in got.evidence]
    assert vectors.limits == [200]
