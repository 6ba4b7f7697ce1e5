"""The Postgres artifact store: the side-effect ledger acts once per key, even under concurrency, and
counts a run's side effects by key prefix taken literally."""

from __future__ import annotations

import threading
import uuid

import pytest


def test_ledger_runs_an_action_once_per_key(deps):
    store = deps.store
    key = f"test/{uuid.uuid4()}"
    calls = []

    def action():
        calls.append(1)
        return {"n": len(calls)}

    results = []
    threads = [threading.Thread(target=lambda: results.append(store.once(key, action))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(first for _, first in results) == [False] * 7 + [True]
    assert all(r == {"n": 1} for r, _ in results)
    assert store.ledger_count(key) == 1


def test_failed_action_records_nothing(deps):
    key = f"test/{uuid.uuid4()}"

    def boom():
        raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError, match="crash before commit"):  # the caller sees the failure
        deps.store.once(key, boom)
    assert deps.store.ledger_count(key) == 0
    assert deps.store.once(key, lambda: {"ok": True}) == ({"ok": True}, True)


def test_ledger_count_takes_the_prefix_literally(deps):
    # `_` and `%` are LIKE wildcards: a run id holding them must not count another run's rows.
    tag = uuid.uuid4().hex[:8]
    mine, other = f"research-a_b-{tag}", f"research-axb-{tag}"
    for wid in (mine, other):
        deps.store.once(f"{wid}/publish", lambda: {"ok": True})
    deps.store.once(f"research-100%-{tag}/notify/1", lambda: {"ok": True})
    deps.store.once(f"research-100x-{tag}/notify/1", lambda: {"ok": True})
    deps.store.once(f"research-back\\slash-{tag}/publish", lambda: {"ok": True})

    assert deps.store.ledger_count(f"{mine}/") == 1
    assert deps.store.ledger_count(f"research-a_b-{tag}") == 1
    assert deps.store.ledger_count(f"research-100%-{tag}/") == 1
    assert deps.store.ledger_count(f"research-back\\slash-{tag}/") == 1
    assert deps.store.ledger_count(f"research-a%-{tag}") == 0
