"""Local corpus search provider: a folder of PDF, HTML, Markdown and text, ranked by hybrid retrieval.

Ranking fuses BM25 over file name, title and text with cosine similarity of E5 document vectors
(reciprocal rank fusion). The catalog is cached per process and refreshed by file size and mtime;
the vectors come from the persistent embedding cache, so a restart re-reads but does not re-embed.

Every PDF and HTML file is parsed in a parser child under limits (``deepsci.sandbox``), up to
min(4, cores) at a time: a hostile file is listed with empty text (still findable by its name,
so the fetch reports why it fails) and never takes the search down. ``progress`` is called
about once a second while the catalog is being built (the search activity heartbeats there).

Confinement: only files whose real path (symlinks resolved) lies inside the corpus folder are
listed, so ``notes.txt -> /etc/passwd`` is never indexed or cited. A corpus folder that is, or
is inside, a system folder is refused with ``InvalidInput`` (``SYSTEM_TREES``), and so is one of
the broad roots that hold whole systems or homes (``SYSTEM_ROOTS``): docs/failure-modes.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepsci.contracts import SearchHit
from deepsci.errors import ErrorType, non_retryable
from deepsci.sandbox import ParseLimits, parse_isolated
from deepsci.text import BM25, content_terms, normalize_ws, tokens

__all__ = ["LocalCorpus", "CORPUS_SUFFIXES", "corpus_root", "SYSTEM_TREES", "SYSTEM_ROOTS"]

CORPUS_SUFFIXES = (".pdf", ".html", ".htm", ".md", ".markdown", ".txt")
_RRF_K = 60
_PARSE_THREADS = max(1, min(4, os.cpu_count() or 1))  # parser children at once
_EMBED_BATCH = 16

# Never a corpus, nor anything inside them: configuration, secrets, kernel and device views, logs.
SYSTEM_TREES = tuple(Path(p) for p in (
    "/etc", "/proc", "/sys", "/dev", "/boot", "/run", "/var/log", "/var/lib", "/var/run", "/var/spool",
    "/var/mail", "/var/cache", "/var/backups", "/var/db", "/private/etc", "/private/var/db", "/System", "/Library",
))
# Never a corpus themselves (a sub-folder such as /srv/papers or /home/ana/corpus is fine).
SYSTEM_ROOTS = tuple(Path(p) for p in (
    "/", "/root", "/home", "/Users", "/var", "/usr", "/opt", "/srv", "/mnt", "/media", "/tmp", "/bin", "/sbin", "/lib",
    "/lib64", "/snap", "/nix", "/private", "/private/var", "/Volumes",
))


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

    def _parse(self, path: Path, size: int, limits: ParseLimits) -> tuple[str, str]:
        """(title, text) of one file; text is "" when it does not parse (the fetch reports why)."""
        title = path.stem.replace("-", " ").replace("_", " ")
        if size > self.max_bytes:
            return title, ""
        try:
            parsed = parse_isolated(path.read_bytes(), path.name, self.max_bytes, limits)
        except Exception:  # noqa: BLE001 - a broken or hostile file is still listed
            return title, ""
        return parsed.title or title, parsed.text

    def _refresh(self, root: Path, limits: ParseLimits, progress: Callable[[], object]) -> list[_Entry]:
        files = _corpus_files(root)
        stale: dict[Path, tuple[int, int]] = {}
        for path in files:
            st = path.stat()
            stamp = (st.st_size, st.st_mtime_ns)
            entry = self._entries.get(path)
            if entry is None or entry.stamp != stamp:
                stale[path] = stamp
        if stale:
            with ThreadPoolExecutor(_PARSE_THREADS, thread_name_prefix="deepsci-catalog") as pool:
                futures: dict[Future, Path] = {
                    pool.submit(self._parse, p, stamp[0], limits): p for p, stamp in stale.items()
                }
                pending = set(futures)
                while pending:  # the children run in the pool; this (activity) thread heartbeats
                    _, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                    progress()
            fresh: list[_Entry] = []
            for fut, path in futures.items():
                title, text = fut.result()
                entry = _Entry(path, stale[path], title, text, None)
                self._entries[path] = entry
                if text:
                    fresh.append(entry)
            for i in range(0, len(fresh), _EMBED_BATCH):
                batch = fresh[i : i + _EMBED_BATCH]
                vecs = self.embedder.passages([normalize_ws(f"{e.title}. {e.text}")[:1500] for e in batch])
                for e, v in zip(batch, vecs, strict=True):
                    e.vector = v
                progress()
        return [self._entries[p] for p in files]

    def search(self, corpus_dir: str, query: str, limit: int, *, limits: ParseLimits | None = None,
               progress: Callable[[], object] | None = None) -> list[SearchHit]:
        root = corpus_root(corpus_dir)
        progress = progress or (lambda: None)
        while not self._lock.acquire(timeout=1.0):  # another search is building the catalog
            progress()
        try:
            entries = self._refresh(root, limits or ParseLimits(), progress)
        finally:
            self._lock.release()
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


def corpus_root(corpus_dir: str | Path) -> Path:
    """The corpus folder's real path; ``InvalidInput`` with a one-line reason when it may not be one."""
    root = Path(corpus_dir).expanduser().resolve()
    home = Path.home().resolve()
    if root in SYSTEM_ROOTS or root == home or any(root == t or t in root.parents for t in SYSTEM_TREES):
        raise non_retryable(ErrorType.INVALID_INPUT, f"corpus folder {root} is a system folder or holds whole systems "
                                          "or homes; point --corpus at a folder of documents")
    if not root.is_dir():
        raise non_retryable(ErrorType.INVALID_INPUT, f"corpus folder does not exist: {root}")
    return root


def _corpus_files(root: Path) -> list[Path]:
    """Document files under ``root`` whose real path is inside ``root`` (symlinks out are skipped)."""
    found = []
    for dirpath, _dirs, names in os.walk(root):  # followlinks=False: a linked folder is not entered
        for name in names:
            path = Path(dirpath) / name
            if path.suffix.lower() not in CORPUS_SUFFIXES:
                continue
            try:
                real = path.resolve(strict=True)
            except (OSError, RuntimeError):  # a dangling link or a loop
                continue
            if real.is_file() and root in real.parents:
                found.append(path)
    return sorted(found)
