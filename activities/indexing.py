"""Index and retrieve activities: chunk + embed + upsert into Qdrant, and hybrid evidence retrieval."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from temporalio import activity

from deepsci.chunking import chunk_document, point_id
from deepsci.contracts import EvidenceRef, IndexInput, IndexResult, RetrieveInput, RetrieveResult
from deepsci.observe import metrics as m
from deepsci.observe import span
from deepsci.parsing import Segment
from deepsci.text import BM25, content_terms, normalize_ws, tokens

if TYPE_CHECKING:
    from activities.deps import Deps

__all__ = ["IndexActivities"]

_EMBED_BATCH = 16


class IndexActivities:
    def __init__(self, deps: Deps):
        self.deps = deps

    @activity.defn(name="index")
    def index(self, inp: IndexInput) -> IndexResult:
        d = self.deps
        model = d.embedder.model
        docs = d.store.get_documents(inp.content_hashes)
        total = 0
        by_hash: dict[str, int] = {}
        for n, digest in enumerate(inp.content_hashes):
            doc = docs.get(digest)
            if doc is None:
                continue
            segments = [Segment(s["locator"], s["start"], s["end"]) for s in doc["segments"]]
            chunks = chunk_document(doc["text"], segments, d.settings.chunk_chars)
            ids = [point_id(digest, c.idx, model) for c in chunks]
            total += len(chunks)
            by_hash[digest] = len(chunks)
            present = d.vectors.existing(ids)
            todo = [(pid, c) for pid, c in zip(ids, chunks, strict=True) if pid not in present]
            d.store.put_chunks([
                {"point_id": pid, "content_hash": digest, "model": model, "idx": c.idx,
                 "locator": c.locator, "start_pos": c.start, "end_pos": c.end, "text": c.text}
                for pid, c in zip(ids, chunks, strict=True)
            ])
            for i in range(0, len(todo), _EMBED_BATCH):
                batch = todo[i : i + _EMBED_BATCH]
                activity.heartbeat(f"doc {n + 1}/{len(inp.content_hashes)} chunk {i}")
                with span("embed", **{"deepsci.embedding.model": model, "deepsci.embedding.texts": len(batch)}):
                    vecs = d.embedder.passages([c.text for _, c in batch])
                m.EMBEDDED_TEXTS.add(len(batch), {"model": model})
                d.vectors.upsert(
                    [pid for pid, _ in batch], vecs,
                    [{"content_hash": digest, "source_id": digest[:16], "idx": c.idx,
                      "locator": c.locator, "text": c.text} for _, c in batch],
                )
        return IndexResult(chunks_indexed=total, chunks_by_hash=by_hash)

    @activity.defn(name="retrieve")
    def retrieve(self, inp: RetrieveInput) -> RetrieveResult:
        started = time.perf_counter()
        with span("retrieve", **{"deepsci.retrieval.sources": len(inp.content_hashes),
                                 "deepsci.retrieval.limit": inp.limit}) as sp:
            result = self._retrieve(inp)
            top = max((e.score for e in result.evidence), default=None)
            sp.set_attributes({"deepsci.retrieval.hits": len(result.evidence),
                               **({"deepsci.retrieval.top_score": top} if top is not None else {})})
        m.RETRIEVAL_DURATION.record(time.perf_counter() - started)
        m.RETRIEVAL_HITS.record(len(result.evidence))
        return result

    def _retrieve(self, inp: RetrieveInput) -> RetrieveResult:
        if not inp.content_hashes:
            return RetrieveResult(evidence=[])
        qv = self.deps.embedder.query(inp.query)
        hits = self.deps.vectors.search(qv, inp.content_hashes, limit=inp.limit * 4)
        if not hits:
            return RetrieveResult(evidence=[])
        # Hybrid: fuse the dense rank with a BM25 rank over the candidates (reciprocal rank fusion).
        bm25 = BM25([tokens(h.payload.get("text", "")) for h in hits])
        lex = bm25.scores(content_terms(inp.query))
        lex_rank = {i: r for r, i in enumerate(sorted(range(len(hits)), key=lambda i: -lex[i]))}
        fused = sorted(
            range(len(hits)),
            key=lambda i: -(1 / (60 + i + 1) + (1 / (60 + lex_rank[i] + 1) if lex[i] > 0 else 0)),
        )
        evidence = []
        for i in fused[: inp.limit]:
            h = hits[i]
            evidence.append(EvidenceRef(
                point_id=h.point_id, source_id=h.payload["source_id"],
                content_hash=h.payload["content_hash"], locator=h.payload.get("locator", ""),
                score=round(h.score, 4), snippet=normalize_ws(h.payload.get("text", ""))[:160],
            ))
        return RetrieveResult(evidence=evidence)
