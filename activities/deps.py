"""What activities need at run time (stores, models, providers), built once per worker process."""

from __future__ import annotations

from dataclasses import dataclass

from deepsci.corpus import LocalCorpus
from deepsci.embedding import CachedEmbedder, Embedder, LocalE5Embedder, OpenAIEmbedder
from deepsci.llm.client import LlmClient
from deepsci.settings import Settings
from deepsci.store import ArtifactStore
from deepsci.vectors import VectorStore, open_vector_store

__all__ = ["Deps", "build_deps", "build_embedder"]


@dataclass
class Deps:
    settings: Settings
    store: ArtifactStore
    embedder: CachedEmbedder
    vectors: VectorStore
    corpus: LocalCorpus
    llm: LlmClient | None = None  # None: no OPENAI_BASE_URL, the offline engine writes


def build_embedder(settings: Settings, store: ArtifactStore) -> CachedEmbedder:
    """OpenAI-compatible embeddings when a base URL and an embedding model are set, else the local
    model named by ``embedding_model``."""
    inner: Embedder
    if settings.openai_base_url and settings.openai_embedding_model:
        inner = OpenAIEmbedder(settings)
    else:
        inner = LocalE5Embedder(settings.embedding_model)
    return CachedEmbedder(inner, store)


def build_deps(settings: Settings) -> Deps:
    store = ArtifactStore(settings.dsn)
    store.ensure_schema()
    embedder = build_embedder(settings, store)
    settings.qdrant_dir.mkdir(parents=True, exist_ok=True)
    vectors = open_vector_store(settings.qdrant_url, str(settings.qdrant_dir), embedder.model, embedder.dim)
    llm = LlmClient(settings, store) if settings.openai_base_url else None
    return Deps(settings, store, embedder, vectors, LocalCorpus(embedder, settings.max_document_bytes), llm)
