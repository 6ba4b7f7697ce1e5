"""What activities need at run time (stores, models, providers), built once per worker process."""

from __future__ import annotations

from dataclasses import dataclass

from deepsci.claims import ClaimChecker
from deepsci.corpus import LocalCorpus
from deepsci.embedding import LOCAL_MODELS, CachedEmbedder, Embedder, LocalE5Embedder, OpenAIEmbedder
from deepsci.llm.client import LlmClient
from deepsci.settings import Settings
from deepsci.store import ArtifactStore
from deepsci.vectors import VectorStore, open_vector_store

__all__ = ["Deps", "build_deps", "build_embedder", "build_claim_checker"]


@dataclass
class Deps:
    settings: Settings
    store: ArtifactStore
    embedder: CachedEmbedder
    vectors: VectorStore
    corpus: LocalCorpus
    llm: LlmClient | None = None  # None: no OPENAI_BASE_URL, the offline engine writes
    claims: ClaimChecker | None = None  # judges a model's claims against their quotes


def build_embedder(settings: Settings, store: ArtifactStore) -> CachedEmbedder:
    """OpenAI-compatible embeddings when a base URL and an embedding model are set, else the local
    model named by ``embedding_model``."""
    inner: Embedder
    if settings.openai_base_url and settings.openai_embedding_model:
        inner = OpenAIEmbedder(settings)
    else:
        inner = LocalE5Embedder(settings.embedding_model)
    return CachedEmbedder(inner, store)


def build_claim_checker(settings: Settings, store: ArtifactStore, embedder: CachedEmbedder) -> ClaimChecker:
    """The claim check's thresholds were calibrated on the local model's similarities, so it embeds
    with the local model even when retrieval uses a remote one (whose scale differs)."""
    if embedder.model in LOCAL_MODELS:
        return ClaimChecker(embedder)
    return ClaimChecker(CachedEmbedder(LocalE5Embedder(settings.embedding_model), store))


def build_deps(settings: Settings) -> Deps:
    store = ArtifactStore(settings.dsn)
    store.ensure_schema()
    embedder = build_embedder(settings, store)
    settings.qdrant_dir.mkdir(parents=True, exist_ok=True)
    vectors = open_vector_store(settings.qdrant_url, str(settings.qdrant_dir), embedder.model, embedder.dim)
    llm = LlmClient(settings, store) if settings.openai_base_url else None
    return Deps(settings, store, embedder, vectors, LocalCorpus(embedder, settings.max_document_bytes), llm,
                build_claim_checker(settings, store, embedder))
