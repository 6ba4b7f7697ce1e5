"""Local corpus search provider: a folder of PDF, HTML, Markdown and text, ranked by hybrid retrieval.

Ranking fuses BM25 over file name, title and text with cosine similarity of E5 document vectors
(reciprocal rank fusion). The catalog is cached per process and refreshed by file size and mtime;
the vectors come from the persistent embedding cache, so a restart re-reads but does not re-embed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepsci.contracts import SearchHit
from deepsci.errors import InvalidInput, non_retryable
from deepsci.parsing import parse_document
from deepsci.text import BM25, content_terms, normalize_ws, tokens

__all__ = ["LocalCorpus", "CORPUS_SUFFIXES"]

CORPUS_SUFFIXES = (".pdf", ".html", ".htm", ".md", ".markdown", ".txt")
_RRF_K = 60


@dataclass
class _Entry:
    path: Path
    stamp: tuple[int, int]
    title: str
    text: str  # "" when the file did not parse; the name still makes it findable
    vector: np.ndarray | None


class LocalCorpus:
    def __init__(self, embedder, max_bytes: int):
        self.embedder, self.max_bytes = embedder, max_bytes
        self._entries: dict[Path, _Entry] = {}
        self._lock = threading.Lock()

    def _refresh(self, root: Path) -> list[_Entry]:
        files = sorted(
            p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in CORPUS_SUFFIXES
        )
        fresh: list[_Entry] = []
        out: list[_Entry] = []
        for path in files:
            st = path.stat()
            stamp = (st.st_size, st.st_mtime_ns)
            entry = self._entries.get(path)
            if entry is None or entry.stamp != stamp:
                title, text = path.stem.replace("-", " ").replace("_", " "), ""
                if st.st_size <= self.max_bytes:
                    try:
                        parsed = parse_document(path.read_bytes(), path.name, self.max_bytes)
                        title, text = parsed.title or title, parsed.text
                    except Exception:  # noqa: BLE001 - a broken file is still listed; fetch reports why
                        pass
                entry = _Entry(path, stamp, title, text, None)
                self._entries[path] = entry
                if text:
                    fresh.append(entry)
            out.append(entry)
        if fresh:
            vecs = self.embedder.passages([normalize_ws(f"{e.title}. {e.text}")[:1500] for e in fresh])
            for e, v in zip(fresh, vecs, strict=True):
                e.vector = v
        return out

    def search(self, corpus_dir: str, query: str, limit: int) -> list[SearchHit]:
        root = Path(corpus_dir).expanduser().resolve()
        if not root.is_dir():
            raise non_retryable(InvalidInput, f"corpus folder does not exist: {root}")
        with self._lock:
            entries = self._refresh(root)
        if not entries:
            return []
        bm25 = BM25([tokens(f"{e.path.stem.replace('-', ' ')} {e.title} {e.text}") for e in entries])
        lexical = bm25.scores(content_terms(query))
        qv = self.embedder.query(query)
        dense = [float(e.vector @ qv) if e.vector is not None else -1.0 for e in entries]
        lex_rank = {i: r for r, i in enumerate(sorted(range(len(entries)), key=lambda i: -lexical[i]))}
        den_rank = {i: r for r, i in enumerate(sorted(range(len(entries)), key=lambda i: -dense[i]))}
        fused = []
        for i in range(len(entries)):
            score = 1 / (_RRF_K + den_rank[i] + 1)
            if lexical[i] > 0:  # a file with no query word gets no lexical vote
                score += 1 / (_RRF_K + lex_rank[i] + 1)
            fused.append((score, i))
        fused.sort(key=lambda x: (-x[0], str(entries[x[1]].path)))
        hits = []
        for score, i in fused[:limit]:
            e = entries[i]
            hits.append(
                SearchHit(uri=e.path.as_uri(), title=e.title, score=round(score * 1000, 3),
                          snippet=normalize_ws(e.text)[:160])
            )
        return hits
