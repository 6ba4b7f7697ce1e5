"""The eval datasets: the unseen one (Celery's manual, installed by `make install`) is well formed
without its corpus, and on both datasets every key fact occurs verbatim in one of its question's
expected sources (evals/check_dataset.py) once the corpus is there. The runs themselves are not
here: `deepsci eval` on 48 questions takes minutes (the CI gate runs the sample dataset)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals import build_unseen
from evals.check_dataset import check
from evals.scoring import dataset_corpus, load_dataset

DATASETS = Path(__file__).resolve().parents[2] / "evals" / "datasets"
UNSEEN = DATASETS / "celery_docs.json"


def test_the_unseen_dataset_is_well_formed_and_names_the_installed_corpus():
    data = load_dataset(UNSEEN)
    corpus = dataset_corpus(data)
    assert data["name"] == "celery_docs" and corpus is not None
    assert corpus.parts[-3:] == (".venv", "unseen", "celery-docs")  # where the Makefile puts it
    questions = data["questions"]
    assert len(questions) >= 40 and len({q["id"] for q in questions}) == len(questions)
    unanswerable = [q for q in questions if not q["answerable"]]
    assert len(unanswerable) >= 5
    assert all(not q["expected_sources"] and not q["key_facts"] for q in unanswerable)
    built = set(build_unseen.DOCUMENTS.values())
    kinds: dict[str, int] = {}
    for q in questions:
        if q["answerable"]:
            assert q["question"].strip() and q["key_facts"] and set(q["expected_sources"]) <= built, q["id"]
            for name in q["expected_sources"]:
                kinds[Path(name).suffix] = kinds.get(Path(name).suffix, 0) + 1
    assert set(kinds) == {".pdf", ".html", ".md"} and kinds[".pdf"] >= 10, kinds


@pytest.mark.parametrize("name", ["agent_reliability.json", "celery_docs.json"])
def test_every_key_fact_is_in_an_expected_source(name):
    corpus = dataset_corpus(load_dataset(DATASETS / name))
    if corpus is None or not corpus.is_dir():
        pytest.skip(f"corpus not installed: {corpus} (run `make install`)")
    errors, info = check(DATASETS / name)
    assert errors == []
    assert any("unanswerable" in line for line in info)


def test_the_check_rejects_a_fact_that_its_source_does_not_say(tmp_path):
    data = load_dataset(DATASETS / "agent_reliability.json")
    data["corpus"] = str(dataset_corpus(data))
    data["questions"][0]["key_facts"].append("a base delay of 9 hours")
    data["questions"][1]["expected_sources"] = ["no-such-document.md"]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    errors, _ = check(tmp_path / "bad.json")
    assert any("'a base delay of 9 hours' not found verbatim" in e for e in errors)
    assert any("no-such-document.md" in e for e in errors)


RST = """\
Routing
=======

.. _intro:

Basics
------

Use :setting:`task_routes` and ``apply_async`` with `the guide <https://example.org>`_, *really*.

.. code-block:: python

    app.conf.task_routes = {'feed.tasks.*': {'queue': 'feeds'}}

- first item
  continues here
- second item
"""


def test_the_unseen_corpus_builder_reads_restructuredtext_and_writes_the_same_bytes_twice():
    blocks = build_unseen.rst_blocks(RST)
    assert blocks == [
        ("title", "Routing"), ("h2", "Basics"),
        ("p", "Use task_routes and apply_async with the guide, really."),
        ("code", "app.conf.task_routes = {'feed.tasks.*': {'queue': 'feeds'}}"),
        ("li", "first item continues here"), ("li", "second item"),
    ]
    pdf = build_unseen.to_pdf(blocks, "test")
    assert pdf == build_unseen.to_pdf(blocks, "test")
    assert "<h2>Basics</h2>" in build_unseen.to_html(blocks)
    assert build_unseen.to_markdown(blocks).startswith("# Routing\n\n## Basics\n")
