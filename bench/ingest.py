"""Raw single-process pymupdf / trafilatura vs the project's isolated path (warm parser pool), same files.

    .venv/bin/python bench/ingest.py FOLDER [FOLDER...]

For each kind (PDF, HTML) it parses every file of that kind under the folders: first raw, in this
process, one after another (pymupdf: open + text of every page; trafilatura: extract); then through
``deepsci.sandbox.parse_isolated`` on a warm pool, from as many threads as the pool has children
(what a worker or ``deepsci ingest`` does). The pool is warmed before the clock starts: it starts
once per worker process, not per document. Prints a table, then one JSON line with the figures
(ratio = isolated docs/s over raw docs/s; the target is >= 0.8).
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from temporalio.exceptions import ApplicationError

from deepsci.parser_pool import default_pool
from deepsci.parsing import sniff_kind
from deepsci.sandbox import ParseLimits, parse_isolated

LIMIT = 20 * 1024 * 1024


def _raw_pdf(data: bytes) -> int:
    import pymupdf

    try:
        with pymupdf.open(stream=data, filetype="pdf") as doc:
            if doc.needs_pass:
                return 0
            for page in doc:
                page.get_text("blocks", sort=True)
            return doc.page_count
    except Exception:  # noqa: BLE001 - a broken file costs what it costs, in both paths
        return 0


def _raw_html(data: bytes) -> int:
    import trafilatura

    trafilatura.extract(data, output_format="markdown", include_tables=True, favor_recall=True)
    return 0


def _isolated(item: tuple[str, bytes]) -> int:
    name, data = item
    try:
        return parse_isolated(data, name, LIMIT, ParseLimits()).pages
    except ApplicationError:
        return 0


def _pages(data: bytes) -> int:
    import pymupdf

    try:
        with pymupdf.open(stream=data, filetype="pdf") as doc:
            return doc.page_count
    except Exception:  # noqa: BLE001
        return 0


def main(folders: list[str]) -> dict:
    files: dict[str, list[tuple[str, bytes]]] = {"pdf": [], "html": []}
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")):
            if p.is_file() and p.stat().st_size <= LIMIT:
                data = p.read_bytes()
                kind = sniff_kind(data, p.name)
                if kind in files:
                    files[kind].append((p.name, data))
    pool = default_pool()
    warm = [("w.html", b"<html><body><p>warm up</p></body></html>")] * pool.size
    with ThreadPoolExecutor(pool.size) as threads:
        list(threads.map(_isolated, warm))
    figures: dict[str, dict] = {}
    for kind, items in files.items():
        if not items:
            continue
        pages = sum(_pages(d) for _, d in items) if kind == "pdf" else 0
        raw = _raw_pdf if kind == "pdf" else _raw_html
        raw(items[0][1])  # imports and first-call set-up are outside the clock here too
        t0 = time.perf_counter()
        for _, data in items:
            raw(data)
        raw_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with ThreadPoolExecutor(pool.size) as threads:
            list(threads.map(_isolated, items))
        iso_s = time.perf_counter() - t0
        figures[kind] = {
            "files": len(items), "pages": pages, "raw_s": round(raw_s, 3), "isolated_s": round(iso_s, 3),
            "raw_docs_per_s": round(len(items) / raw_s, 2), "isolated_docs_per_s": round(len(items) / iso_s, 2),
            "raw_pages_per_s": round(pages / raw_s, 1), "isolated_pages_per_s": round(pages / iso_s, 1),
            "ratio": round(raw_s / iso_s, 2),
        }
    figures["pool_size"] = pool.size
    return figures


if __name__ == "__main__":
    result = main(sys.argv[1:] or ["evals/corpus"])
    print(f"{'kind':6}{'files':>7}{'pages':>7}{'raw docs/s':>12}{'iso docs/s':>12}{'raw pg/s':>10}{'iso pg/s':>10}"
          f"{'ratio':>7}")
    for kind, f in result.items():
        if isinstance(f, dict):
            print(f"{kind:6}{f['files']:>7}{f['pages']:>7}{f['raw_docs_per_s']:>12}{f['isolated_docs_per_s']:>12}"
                  f"{f['raw_pages_per_s']:>10}{f['isolated_pages_per_s']:>10}{f['ratio']:>7}")
    print(json.dumps(result))
