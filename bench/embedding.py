#!/usr/bin/env python3
"""Batched vs one-by-one embedding of the same chunks, with the local model and the OpenAI-compatible path.

    .venv/bin/python bench/embedding.py --chunks 64 [--batch 16] [--repeat 3]

The chunks are the sample corpus's Markdown and text files, split by ``deepsci.chunking`` at the
pipeline's chunk size. No cache is involved (the embedders are used bare):

* local: ``LocalE5Embedder.passages`` on batches of ``--batch`` (what the index activity sends)
  vs one call per chunk;
* openai: ``OpenAIEmbedder.passages`` (the real ``openai`` client, batches of
  ``openai_embedding_batch``) against the loopback fake (tests/fakes/openai_server.py) vs one
  request per chunk.

Each figure is the best of ``--repeat`` timings. The last stdout line is JSON with
``local_ratio`` and ``openai_ratio`` (one-by-one seconds / batched seconds) and the per-chunk costs.
"""

from __future__ import annotations

import argparse
import sys
import time

from _stack import CORPUS, emit, log

from deepsci.chunking import chunk_document
from deepsci.embedding import LocalE5Embedder, OpenAIEmbedder
from deepsci.settings import REPO_ROOT, Settings

sys.path.insert(0, str(REPO_ROOT))  # the loopback fake lives under tests/
from tests.fakes.openai_server import FakeOpenAI  # noqa: E402


def corpus_chunks(n: int, chunk_chars: int) -> list[str]:
    texts: list[str] = []
    for path in sorted(CORPUS.iterdir()):
        if path.suffix in (".md", ".txt"):
            text = path.read_text(encoding="utf-8")
            texts += [c.text for c in chunk_document(text, [], chunk_chars)]
    if not texts:
        raise SystemExit(f"no Markdown or text files in {CORPUS}")
    return (texts * (n // len(texts) + 1))[:n]


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def compare(name: str, embed, chunks: list[str], batch: int, repeat: int) -> dict:
    embed(chunks[:2])  # load the model / open the connection
    batched = best_of(repeat, lambda: [embed(chunks[i : i + batch]) for i in range(0, len(chunks), batch)])
    single = best_of(repeat, lambda: [embed([c]) for c in chunks])
    log(f"{name}: batched {batched:.3f}s, one by one {single:.3f}s for {len(chunks)} chunks", "embedding")
    return {f"{name}_batched_ms_per_chunk": round(1000 * batched / len(chunks), 3),
            f"{name}_single_ms_per_chunk": round(1000 * single / len(chunks), 3),
            f"{name}_ratio": round(single / batched, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=64, help="chunks to embed (default 64)")
    ap.add_argument("--batch", type=int, default=16, help="local batch size (default 16, the index activity's)")
    ap.add_argument("--repeat", type=int, default=3, help="timings per figure; the best counts (default 3)")
    args = ap.parse_args(argv)
    settings = Settings(_env_file=None)
    chunks = corpus_chunks(args.chunks, settings.chunk_chars)
    out: dict = {"chunks": len(chunks), "local_batch": args.batch}
    out |= compare("local", LocalE5Embedder().passages, chunks, args.batch, args.repeat)

    fake = FakeOpenAI()
    fake.start()
    try:
        remote = OpenAIEmbedder(Settings(_env_file=None, openai_base_url=fake.base_url, openai_api_key="bench",
                                         openai_embedding_model="text-embedding-3-small",
                                         openai_embedding_dimensions=256))
        out["openai_batch"] = remote.batch
        out |= compare("openai", remote.passages, chunks, remote.batch, args.repeat)
        out["openai_requests"] = len(fake.embedding_inputs)
    finally:
        fake.stop()
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
