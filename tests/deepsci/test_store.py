"""The Postgres artifact store: the side-effect ledger acts once per key, even under concurrency."""

from __future__ import annotations

import threading
import uuid


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

    try:
        deps.store.once(key, boom)
    except RuntimeError:
        pass
    assert deps.store.ledger_count(key) == 0
    assert deps.store.once(key, lambda: {"ok": True}) == ({"ok": True}, True)
