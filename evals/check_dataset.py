"""Validate an eval dataset against its corpus.

Usage:
    python evals/check_dataset.py [DATASET_JSON ...]

Defaults to every dataset in evals/datasets/ (celery_docs.json needs its corpus, installed by
`make install`).  Checks that:

* the dataset has the expected shape (name, corpus, questions with id,
  question, expected_sources, key_facts, answerable) and unique ids;
* the corpus directory holds at least MIN_DOCUMENTS documents, each of which
  yields non-empty text;
* every expected source exists in the corpus;
* every key fact of an answerable question appears verbatim (case-insensitive,
  whitespace-normalized) in the extracted text of at least one of its expected
  sources.  Extraction: pymupdf ``page.get_text()`` for .pdf,
  ``trafilatura.extract(..., favor_recall=True)`` for .html, raw text for .md;
* there are at least MIN_ANSWERABLE answerable and MIN_UNANSWERABLE
  unanswerable questions, and unanswerable ones have no sources or key facts.

Exits with status 1 and a list of problems on failure, 0 on success.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATASETS_DIR = REPO_ROOT / "evals" / "datasets"

MIN_DOCUMENTS = 15
MIN_ANSWERABLE = 12
MIN_UNANSWERABLE = 2
DOC_EXTENSIONS = {".md", ".markdown", ".txt", ".html", ".htm", ".pdf"}
QUESTION_FIELDS = {
    "id": str,
    "question": str,
    "expected_sources": list,
    "key_facts": list,
    "answerable": bool,
}


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def extract_text(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        import pymupdf

        with pymupdf.open(path) as doc:
            return "\n".join(page.get_text() for page in doc)
    if suffix in {".html", ".htm"}:
        import trafilatura

        raw = path.read_text(encoding="utf-8")
        text = trafilatura.extract(raw, include_comments=False, favor_recall=True)
        return text or ""
    return path.read_text(encoding="utf-8")


def check(dataset_path: Path) -> tuple[list[str], list[str]]:
    """Return (errors, info lines) for one dataset file."""
    errors: list[str] = []
    info: list[str] = []

    try:
        data = json.loads(dataset_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [f"dataset not found: {dataset_path}"], info
    except json.JSONDecodeError as exc:
        return [f"dataset is not valid JSON: {exc}"], info

    if not isinstance(data, dict):
        return ["dataset root must be a JSON object"], info
    for key, kind in (("name", str), ("corpus", str), ("questions", list)):
        if not isinstance(data.get(key), kind):
            errors.append(f"top-level field {key!r} missing or not a {kind.__name__}")
    if errors:
        return errors, info

    corpus_dir = Path(data["corpus"])
    if not corpus_dir.is_absolute():
        corpus_dir = REPO_ROOT / corpus_dir
    if not corpus_dir.is_dir():
        hint = " (run `make install`: it installs the unseen corpus)" if ".venv" in corpus_dir.parts else ""
        return [f"corpus directory does not exist: {corpus_dir}{hint}"], info

    # --- corpus documents -------------------------------------------------
    documents = sorted(
        p for p in corpus_dir.iterdir() if p.is_file() and p.suffix.lower() in DOC_EXTENSIONS
    )
    if len(documents) < MIN_DOCUMENTS:
        errors.append(
            f"corpus has {len(documents)} documents, need at least {MIN_DOCUMENTS} ({corpus_dir})"
        )
    texts: dict[str, str] = {}
    for doc in documents:
        try:
            text = extract_text(doc)
        except Exception as exc:  # noqa: BLE001 - report every broken file
            errors.append(f"{doc.name}: text extraction failed: {exc}")
            continue
        if not text.strip():
            errors.append(f"{doc.name}: extracted text is empty")
        texts[doc.name] = normalize(text)
        info.append(f"  {doc.name:48s} {len(text.split()):5d} words")

    # --- questions ----------------------------------------------------------
    seen_ids: set[str] = set()
    answerable = unanswerable = 0
    facts_checked = 0
    cited: set[str] = set()
    for index, q in enumerate(data["questions"]):
        label = f"question #{index + 1}"
        if not isinstance(q, dict):
            errors.append(f"{label}: must be an object")
            continue
        bad_fields = [f for f, kind in QUESTION_FIELDS.items() if not isinstance(q.get(f), kind)]
        if bad_fields:
            errors.append(f"{label}: missing or mistyped fields: {', '.join(bad_fields)}")
            continue
        label = q["id"]
        if label in seen_ids:
            errors.append(f"{label}: duplicate id")
        seen_ids.add(label)
        if not q["question"].strip():
            errors.append(f"{label}: empty question text")

        sources, facts = q["expected_sources"], q["key_facts"]
        if not q["answerable"]:
            unanswerable += 1
            if sources or facts:
                errors.append(f"{label}: unanswerable question must have empty expected_sources and key_facts")
            continue

        answerable += 1
        if not sources:
            errors.append(f"{label}: answerable question has no expected_sources")
        if not facts:
            errors.append(f"{label}: answerable question has no key_facts")
        source_texts = []
        for source in sources:
            if not isinstance(source, str) or not (corpus_dir / source).is_file():
                errors.append(f"{label}: expected source not found in corpus: {source!r}")
                continue
            cited.add(source)
            if source in texts:
                source_texts.append(texts[source])
        for fact in facts:
            if not isinstance(fact, str) or not fact.strip():
                errors.append(f"{label}: key fact must be a non-empty string: {fact!r}")
                continue
            facts_checked += 1
            needle = normalize(fact)
            if not any(needle in text for text in source_texts):
                errors.append(
                    f"{label}: key fact {fact!r} not found verbatim in any expected source {sources}"
                )

    if answerable < MIN_ANSWERABLE:
        errors.append(f"only {answerable} answerable questions, need at least {MIN_ANSWERABLE}")
    if unanswerable < MIN_UNANSWERABLE:
        errors.append(f"only {unanswerable} unanswerable questions, need at least {MIN_UNANSWERABLE}")

    uncited = [d.name for d in documents if d.name not in cited]
    info.insert(0, f"corpus: {corpus_dir} ({len(documents)} documents)")
    info.append(
        f"questions: {answerable} answerable, {unanswerable} unanswerable; "
        f"{facts_checked} key facts checked"
    )
    if uncited:
        info.append(f"note: documents not cited by any question: {', '.join(uncited)}")
    return errors, info


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(DATASETS_DIR.glob("*.json"))
    failed = False
    for path in paths:
        errors, info = check(path)
        print(f"== {path}")
        for line in info:
            print(line)
        if errors:
            failed = True
            print(f"FAIL: {len(errors)} problem(s):", file=sys.stderr)
            for err in errors:
                print(f"  - {err}", file=sys.stderr)
        else:
            print("OK: dataset is consistent with its corpus")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
