"""What the pipeline makes of files, folders or URLs: fetch (safe fetcher), parse (parser pool), chunk.

The domain side of ``deepsci ingest``: no Temporal server, no Postgres. Each input ends as one
``IngestResult`` — ``ok`` with its kind, pages, characters and chunks, or ``refused`` with the
one-line reason the pipeline would record — and a bad input never stops the others. Documents go
to the parser pool from as many threads as it has children, so every core parses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

from temporalio.exceptions import ApplicationError

from deepsci.charsets import charset_from_content_type
from deepsci.chunking import chunk_document
from deepsci.parser_pool import ParserPool, default_pool
from deepsci.sandbox import ParseLimits, parse_isolated

__all__ = ["IngestResult", "IngestSummary", "expand", "ingest"]


@dataclass
class IngestResult:
    path: str
    status: str  # "ok" | "refused"
    reason: str | None = None
    kind: str | None = None
    pages: int = 0
    chars: int = 0
    chunks: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class IngestSummary:
    files: int
    ok: int
    refused: int
    pages: int
    elapsed_s: float  # first document handed to the parser to the last result

    def as_dict(self) -> dict:
        return asdict(self)


def _is_url(item: str) -> bool:
    return urlparse(item).scheme in ("http", "https")


def expand(inputs: Iterable[str]) -> Iterator[str]:
    """URLs as given; files as given; folders as their files, recursively, in name order (hidden ones skipped)."""
    for item in inputs:
        if _is_url(item):
            yield item
            continue
        path = Path(item)
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts):
                    yield str(p)
        else:
            yield item


class _Reader:
    """Bytes of one input, the name to parse them under and a declared charset."""

    def __init__(self, settings):
        self.settings = settings
        self._fetcher = None
        self._lock = threading.Lock()

    def read(self, item: str) -> tuple[bytes, str, str | None]:
        if _is_url(item):
            with self._lock:
                if self._fetcher is None:
                    from deepsci.fetcher import SafeFetcher

                    self._fetcher = SafeFetcher.from_settings(self.settings)
            fetched = self._fetcher.fetch(item)
            return fetched.data, fetched.parse_name, charset_from_content_type(fetched.content_type)
        path = Path(item)
        if not path.is_file():
            raise _Refused(f"no such file: {item}")
        size = path.stat().st_size
        if size > self.settings.max_document_bytes:
            raise _Refused(f"document is {size} bytes (limit {self.settings.max_document_bytes})")
        return path.read_bytes(), path.name, None

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()


class _Refused(Exception):
    pass


def ingest(inputs: Iterable[str], settings, *, pool: ParserPool | None = None,
           on_result: Callable[[IngestResult], object] | None = None) -> tuple[list[IngestResult], IngestSummary]:
    """Fetch, parse and chunk every input; ``on_result`` sees each result as it lands (in input order)."""
    items = list(expand(inputs))
    pool = pool or default_pool()
    limits = ParseLimits.from_settings(settings)
    reader = _Reader(settings)
    first_handover: list[float] = []
    lock = threading.Lock()

    def one(item: str) -> tuple[IngestResult, float]:
        t0 = time.monotonic()
        result = IngestResult(path=item, status="refused")
        try:
            data, name, charset = reader.read(item)
            with lock:
                first_handover.append(time.monotonic())
            doc = parse_isolated(data, name, settings.max_document_bytes, limits, charset=charset, pool=pool)
            chunks = chunk_document(doc.text, doc.segments, settings.chunk_chars)
            result = IngestResult(path=item, status="ok", kind=doc.kind, pages=doc.pages, chars=len(doc.text),
                                  chunks=len(chunks))
        except _Refused as exc:
            result.reason = str(exc)
        except ApplicationError as exc:
            result.reason = exc.message or str(exc)
        except OSError as exc:
            result.reason = f"could not read: {exc}"
        result.seconds = round(time.monotonic() - t0, 4)
        return result, time.monotonic()

    results: list[IngestResult] = []
    last = 0.0
    try:
        with ThreadPoolExecutor(max_workers=pool.size, thread_name_prefix="ingest") as threads:
            for result, done_at in threads.map(one, items):
                results.append(result)
                last = max(last, done_at)
                if on_result is not None:
                    on_result(result)
    finally:
        reader.close()
    start = min(first_handover) if first_handover else last
    ok = [r for r in results if r.status == "ok"]
    summary = IngestSummary(files=len(results), ok=len(ok), refused=len(results) - len(ok),
                            pages=sum(r.pages for r in ok), elapsed_s=round(max(0.0, last - start), 3))
    return results, summary
