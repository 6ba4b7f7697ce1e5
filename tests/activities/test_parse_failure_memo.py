"""A document that fails to parse is parsed once per run: later fetches of the same bytes in the
same run fail with the recorded reason, without another parser child; another run tries again."""

from __future__ import annotations

import uuid

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.sources as sources
from deepsci.contracts import FetchParseInput


def test_a_broken_document_is_parsed_once_per_run(deps, tmp_path, monkeypatch):
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n" + uuid.uuid4().hex.encode() + b" this is not a PDF body\n%%EOF")
    calls = []
    real = sources.parse_isolated
    monkeypatch.setattr(sources, "parse_isolated", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    acts = sources.SourceActivities(deps)
    run_a, run_b = f"research-a{uuid.uuid4().hex[:6]}", f"research-b{uuid.uuid4().hex[:6]}"

    def fetch(key: str) -> ApplicationError:
        with pytest.raises(ApplicationError) as err:
            ActivityEnvironment().run(acts.fetch_parse, FetchParseInput(idempotency_key=key, uri=broken.as_uri()))
        assert err.value.type == "BadDocument" and err.value.non_retryable
        return err.value

    first = fetch(f"{run_a}/sq1/fetch/x")
    second = fetch(f"{run_a}/sq2/fetch/x")
    assert second.message == first.message and len(calls) == 1
    fetch(f"{run_b}/sq1/fetch/x")  # a new run parses again
    assert len(calls) == 2


def test_the_memo_belongs_to_the_run_named_in_the_input(deps, tmp_path, monkeypatch):
    # The run is FetchParseInput.run_id, whatever the key looks like (older inputs: the key's first part).
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n" + uuid.uuid4().hex.encode() + b" this is not a PDF body\n%%EOF")
    calls = []
    real = sources.parse_isolated
    monkeypatch.setattr(sources, "parse_isolated", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    acts = sources.SourceActivities(deps)
    run_a, run_b = f"research-a{uuid.uuid4().hex[:6]}", f"research-b{uuid.uuid4().hex[:6]}"

    def fetch(run_id: str, key: str) -> None:
        with pytest.raises(ApplicationError):
            ActivityEnvironment().run(acts.fetch_parse, FetchParseInput(
                idempotency_key=key, uri=broken.as_uri(), run_id=run_id))

    fetch(run_a, "shared/sq1/fetch/x")
    fetch(run_a, "other/sq2/fetch/x")
    assert len(calls) == 1  # same run, different keys: the recorded reason, no second parse
    fetch(run_b, "shared/sq1/fetch/x")
    assert len(calls) == 2  # same key prefix, another run: parsed again
