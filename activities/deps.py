"""What activities need at run time (stores, models, providers), built once per worker process."""

from __future__ import annotations

from dataclasses import dataclass

from deepsci.corpus import LocalCorpus
from deepsci.embedding import CachedEmbedder, LocalE5Embedder
from deepsci.settings import Settings
from deepsci.store import ArtifactStore
from deepsci.vectors import VectorStore, open_vector_store

__all__ = ["Deps", "build_deps"]


@dataclass
class Deps:
    settings: Settings
    store: ArtifactStore
    embedder: CachedEmbedder
    vectors: VectorStore
    corpus: LocalCorpus


def build_deps(settings: Settings) -> Deps:
    store = ArtifactStore(settings.dsn)
    store.ensure_schema()
    embedder = CachedEmbedder(LocalE5Embedder(), store)
    settings.qdrant_dir.mkdir(parents=True, exist_ok=True)
    vectors = open_vector_store(settings.qdrant_url, str(settings.qdrant_dir), embedder.model, embedder.dim)
    return Deps(settings, store, embedder, vectors, LocalCorpus(embedder, settings.max_document_bytes))
