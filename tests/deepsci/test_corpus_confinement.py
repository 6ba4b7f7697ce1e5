"""The local corpus stays inside its folder: symlinks out are neither indexed nor cited, and system
folders are refused as a corpus with a one-line reason (through deepsci.corpus and the search activity)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.sources import SourceActivities
from deepsci.contracts import SearchInput
from deepsci.corpus import LocalCorpus, corpus_root
from deepsci.errors import ErrorType

SECRET = "rootkit-canary-passphrase"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(f"Circuit breakers are configured with the {SECRET} on this host.\n")
    (outside / "papers").mkdir()
    (outside / "papers" / "linked.md").write_text(f"# Linked folder\n\nCircuit breakers and the {SECRET}.\n")
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "breakers.md").write_text("# Circuit breakers\n\nA circuit breaker stops calls to a failing model "
                                      "provider after repeated failures.\n")
    (root / "passwd.txt").symlink_to(outside / "secret.txt")  # a file link out of the corpus
    (root / "more").symlink_to(outside / "papers", target_is_directory=True)  # a folder link out
    (root / "alias.md").symlink_to(root / "breakers.md")  # a link that stays inside is fine
    (root / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    return root


def test_symlinks_out_of_the_corpus_are_not_indexed_or_cited(deps, corpus):
    hits = LocalCorpus(deps.embedder, 1024 * 1024).search(str(corpus), f"circuit breakers {SECRET}", 10)
    uris = sorted(h.uri.rsplit("/", 1)[-1] for h in hits)
    assert uris == ["alias.md", "breakers.md"]
    assert not any(SECRET in h.snippet or SECRET in h.title for h in hits)


@pytest.mark.parametrize("folder", ["/", "/etc", "/etc/ssl", "/proc", "/proc/self", "/sys", "/dev", "/boot",
                                    "/var", "/var/log", "/usr", "/home", "~"])
def test_system_folders_are_refused_with_one_line(folder):
    with pytest.raises(ApplicationError) as info:
        corpus_root(folder)
    err = info.value
    assert err.type == ErrorType.INVALID_INPUT and err.non_retryable
    assert "system folder" in err.message and "\n" not in err.message


def test_a_link_to_a_system_folder_is_refused_by_where_it_points(tmp_path):
    (tmp_path / "docs").symlink_to("/etc", target_is_directory=True)
    with pytest.raises(ApplicationError) as info:
        corpus_root(tmp_path / "docs")
    assert info.value.type == ErrorType.INVALID_INPUT and "/etc" in info.value.message


def test_an_ordinary_folder_is_accepted(tmp_path):
    assert corpus_root(tmp_path) == tmp_path.resolve()


def test_the_search_activity_refuses_etc_as_a_corpus(deps):
    acts = SourceActivities(deps)
    inp = SearchInput(idempotency_key=f"t/{uuid.uuid4().hex}", query="password", corpus="/etc",
                      providers=["local"], limit=3)
    with pytest.raises(ApplicationError) as info:
        ActivityEnvironment().run(acts.search, inp)
    assert info.value.type == ErrorType.INVALID_INPUT and info.value.non_retryable
    assert "/etc is a system folder" in info.value.message
