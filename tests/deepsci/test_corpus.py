"""Local corpus search over evals/corpus (Markdown, HTML and PDF, parsed in parser children, ranked
by BM25 + E5 vectors): a question finds the file that answers it, whatever its format, and an edited
file is searched as it is now."""

from __future__ import annotations

import shutil

import pytest
from temporalio.exceptions import ApplicationError

from deepsci.corpus import LocalCorpus
from tests.helpers import CORPUS


@pytest.fixture(scope="module")
def corpus(deps) -> LocalCorpus:
    return deps.corpus  # the worker's catalog: built once per session, like once per worker process


def names(hits) -> list[str]:
    return [h.uri.rsplit("/", 1)[-1] for h in hits]


@pytest.mark.parametrize(("question", "expected"), [
    ("How does full jitter spread retries out?", "retries-backoff-and-jitter.md"),
    ("What does the half-open state of a circuit breaker do?", "circuit-breakers-for-model-providers.md"),
    ("How should an approval gate wait for a human reviewer?", "human-in-the-loop-approvals.html"),
    ("What does durable execution persist so a workflow survives a crash?", "durable-execution-fundamentals.pdf"),
])
def test_a_question_finds_the_file_that_answers_it(corpus, question, expected):
    hits = corpus.search(str(CORPUS), question, 3)
    assert names(hits)[0] == expected, names(hits)
    assert len(hits) == 3 and hits[0].score >= hits[1].score >= hits[2].score
    top = hits[0]
    assert top.uri == (CORPUS / expected).resolve().as_uri()
    assert top.title and top.snippet  # a title and the start of its parsed text, to show the user


def test_an_edited_file_is_searched_as_it_is_now(corpus, tmp_path):
    for name in ("retries-backoff-and-jitter.md", "prompt-injection-defenses.md"):
        shutil.copy(CORPUS / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("Sourdough starter needs feeding every twelve hours.")
    assert names(corpus.search(str(tmp_path), "how often to feed a sourdough starter", 1)) == ["notes.txt"]

    (tmp_path / "notes.txt").write_text("Rotate the API keys of the model provider every ninety days, "
                                        "and revoke keys that leaked.")
    (tmp_path / "bread.md").write_text("# Bread\n\nSourdough starter needs feeding every twelve hours.\n")
    assert names(corpus.search(str(tmp_path), "how often to feed a sourdough starter", 1)) == ["bread.md"]
    hits = corpus.search(str(tmp_path), "when should API keys be rotated?", 4)
    assert names(hits)[0] == "notes.txt" and hits[0].snippet.startswith("Rotate the API keys")
    assert sorted(names(hits)) == ["bread.md", "notes.txt", "prompt-injection-defenses.md",
                                   "retries-backoff-and-jitter.md"]


def test_a_missing_folder_fails_fast_with_its_path(corpus, tmp_path):
    with pytest.raises(ApplicationError) as info:
        corpus.search(str(tmp_path / "nope"), "anything", 3)
    assert info.value.non_retryable and str(tmp_path / "nope") in info.value.message
