"""Vector store: Qdrant (local mode on a path by default, a server when ``QDRANT_URL`` is set)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from qdrant_client import QdrantClient, models

__all__ = ["VectorStore", "VectorHit", "open_vector_store"]

_OPEN: dict[str, VectorStore] = {}
_OPEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class VectorHit:
    point_id: str
    score: float
    payload: dict


class VectorStore:
    """One collection per embedding model, so a model change never mixes vector spaces."""

    def __init__(self, client: QdrantClient, model: str, dim: int):
        self.client, self.dim = client, dim
        self.collection = "chunks_" + "".join(c if c.isalnum() else "_" for c in model).lower()
        # Local mode is not thread-safe; the worker runs sync activities in a thread pool.
        self._lock = threading.Lock()
        with self._lock:
            if not self.client.collection_exists(self.collection):
                self.client.create_collection(
                    self.collection,
                    vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
                )

    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None:
        if not ids:
            return
        points = [
            models.PointStruct(id=i, vector=v.tolist(), payload=p)
            for i, v, p in zip(ids, vectors, payloads, strict=True)
        ]
        with self._lock:
            self.client.upsert(self.collection, points=points, wait=True)

    def search(self, vector: np.ndarray, content_hashes: list[str], limit: int) -> list[VectorHit]:
        flt = models.Filter(
            must=[models.FieldCondition(key="content_hash", match=models.MatchAny(any=content_hashes))]
        )
        with self._lock:
            res = self.client.query_points(
                self.collection, query=vector.tolist(), query_filter=flt, limit=limit,
                with_payload=True,
            )
        return [VectorHit(str(p.id), float(p.score), p.payload or {}) for p in res.points]

    def count(self, content_hashes: list[str] | None = None) -> int:
        flt = None
        if content_hashes is not None:
            flt = models.Filter(
                must=[models.FieldCondition(key="content_hash", match=models.MatchAny(any=content_hashes))]
            )
        with self._lock:
            return self.client.count(self.collection, count_filter=flt, exact=True).count

    def existing(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        with self._lock:
            got = self.client.retrieve(self.collection, ids=ids, with_payload=False, with_vectors=False)
        return {str(p.id) for p in got}


def open_vector_store(url: str | None, path: str, model: str, dim: int) -> VectorStore:
    """Open (once per process and location) the Qdrant client: local mode allows one client per path."""
    key = url or path
    with _OPEN_LOCK:
        store = _OPEN.get(f"{key}|{model}")
        if store is None:
            client = QdrantClient(url=url, timeout=20) if url else QdrantClient(path=path)
            store = VectorStore(client, model, dim)
            _OPEN[f"{key}|{model}"] = store
        return store
