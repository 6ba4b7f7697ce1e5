"""Postgres artifact store: parsed documents, chunks, run artifacts, reports, the side-effect ledger.

Every write is keyed by an idempotency key or a content hash (``INSERT ... ON CONFLICT``), so a
retried or replayed activity writes the same row again, never a second one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb

__all__ = ["ArtifactStore", "connect_with_retry"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    content_hash text PRIMARY KEY,
    uri text NOT NULL,
    title text NOT NULL,
    kind text NOT NULL,
    text text NOT NULL,
    segments jsonb NOT NULL,
    bytes integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS chunks (
    point_id uuid PRIMARY KEY,
    content_hash text NOT NULL REFERENCES documents(content_hash),
    model text NOT NULL,
    idx integer NOT NULL,
    locator text NOT NULL,
    start_pos integer NOT NULL,
    end_pos integer NOT NULL,
    text text NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks (content_hash, model);
CREATE TABLE IF NOT EXISTS artifacts (
    key text PRIMARY KEY,
    kind text NOT NULL,
    body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS reports (
    workflow_id text PRIMARY KEY,
    question text NOT NULL,
    mode text NOT NULL,
    markdown text NOT NULL,
    body jsonb NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ledger (
    key text PRIMARY KEY,
    result jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS embedding_cache (
    key text PRIMARY KEY,
    model text NOT NULL,
    vector bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS llm_cache (
    key text PRIMARY KEY,
    model text NOT NULL,
    content text NOT NULL,
    usage jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""


def connect_with_retry(dsn: str, attempts: int = 30, delay_s: float = 0.5) -> psycopg.Connection:
    """Connect, waiting for a database that is still starting (compose, a fresh embedded server)."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return psycopg.connect(dsn, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            last = exc
            time.sleep(delay_s)
    raise RuntimeError(f"Postgres at {dsn} is not reachable: {last}")


class ArtifactStore:
    def __init__(self, dsn: str):
        self.dsn = dsn

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[DictRow]]:
        with psycopg.connect(self.dsn, autocommit=True, row_factory=dict_row) as conn:
            yield conn

    def ensure_schema(self) -> None:
        with connect_with_retry(self.dsn) as conn:
            conn.execute("SELECT pg_advisory_lock(4242)")  # several workers may start at once
            try:
                conn.execute(SCHEMA)
            finally:
                conn.execute("SELECT pg_advisory_unlock(4242)")

    # ------------------------------------------------------------ documents and chunks

    def put_document(
        self, content_hash: str, uri: str, title: str, kind: str, text: str,
        segments: list[dict], nbytes: int,
    ) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO documents (content_hash, uri, title, kind, text, segments, bytes)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (content_hash) DO NOTHING",
                (content_hash, uri, title, kind, text, Jsonb(segments), nbytes),
            )

    def get_document(self, content_hash: str) -> dict | None:
        with self._conn() as conn:
            return conn.execute(
                "SELECT * FROM documents WHERE content_hash = %s", (content_hash,)
            ).fetchone()

    def get_documents(self, hashes: list[str]) -> dict[str, dict]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT * FROM documents WHERE content_hash = ANY(%s)", (hashes,)
            ).fetchall()
        return {r["content_hash"]: r for r in rows}

    def put_chunks(self, rows: list[dict]) -> None:
        with self._conn() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO chunks (point_id, content_hash, model, idx, locator, start_pos,"
                " end_pos, text) VALUES (%(point_id)s, %(content_hash)s, %(model)s, %(idx)s,"
                " %(locator)s, %(start_pos)s, %(end_pos)s, %(text)s)"
                " ON CONFLICT (point_id) DO NOTHING",
                rows,
            )

    def get_chunks(self, point_ids: list[str]) -> dict[str, dict]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT c.*, d.uri, d.title FROM chunks c JOIN documents d USING (content_hash)"
                " WHERE c.point_id = ANY(%s::uuid[])",
                (point_ids,),
            ).fetchall()
        return {str(r["point_id"]): r for r in rows}

    # ------------------------------------------------------------ run artifacts

    def put_artifact(self, key: str, kind: str, body: Any) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO artifacts (key, kind, body) VALUES (%s, %s, %s)"
                " ON CONFLICT (key) DO UPDATE SET body = EXCLUDED.body",
                (key, kind, Jsonb(body)),
            )

    def get_artifact(self, key: str) -> Any:
        with self._conn() as conn:
            row = conn.execute("SELECT body FROM artifacts WHERE key = %s", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return row["body"]

    # ------------------------------------------------------------ reports and the ledger

    def put_report(self, workflow_id: str, question: str, mode: str, markdown: str, body: dict) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO reports (workflow_id, question, mode, markdown, body)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (workflow_id) DO NOTHING",
                (workflow_id, question, mode, markdown, Jsonb(body)),
            )

    def get_report(self, workflow_id: str) -> dict | None:
        with self._conn() as conn:
            return conn.execute(
                "SELECT * FROM reports WHERE workflow_id = %s", (workflow_id,)
            ).fetchone()

    def once(self, key: str, action: Callable[[], dict]) -> tuple[dict, bool]:
        """Run ``action`` at most once per key; later calls return the recorded result.

        A transaction-scoped advisory lock on the key's hash serialises concurrent attempts (the
        row does not exist yet, so there is no row to lock); the action runs inside the
        transaction, so a crash before commit leaves no record and the retry acts again.
        Returns (result, first_time).
        """
        with psycopg.connect(self.dsn, row_factory=dict_row) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
            row = conn.execute("SELECT result FROM ledger WHERE key = %s", (key,)).fetchone()
            if row is not None:
                return row["result"], False
            result = action()
            conn.execute(
                "INSERT INTO ledger (key, result) VALUES (%s, %s)", (key, Jsonb(result))
            )
            return result, True

    def ledger_get(self, key: str) -> dict | None:
        """The recorded result of a side effect, or None if it has not happened (yet)."""
        with self._conn() as conn:
            row = conn.execute("SELECT result FROM ledger WHERE key = %s", (key,)).fetchone()
        return row["result"] if row else None

    def ledger_count(self, prefix: str) -> int:
        """How many side effects were recorded under keys starting with ``prefix`` (taken literally)."""
        # Run ids may hold `_` and `%`, which LIKE reads as wildcards: escape them (and the escape).
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._conn() as conn:
            row = conn.execute(
                "SELECT count(*) AS n FROM ledger WHERE key LIKE %s ESCAPE '\\'", (pattern,)
            ).fetchone()
        return int(row["n"]) if row else 0

    # ------------------------------------------------------------ read-only counts (bench/chaos.py)

    def side_effect_counts(self, workflow_id: str) -> dict[str, int]:
        """How many published reports and ledger entries a run left (each should be 1)."""
        with self._conn() as conn:
            reports = conn.execute(
                "SELECT count(*) AS n FROM reports WHERE workflow_id = %s", (workflow_id,)
            ).fetchone()
            ledger = conn.execute(
                "SELECT count(*) AS n FROM ledger WHERE left(key, %s) = %s",
                (len(workflow_id) + 1, workflow_id + "/"),
            ).fetchone()
        return {"reports": int(reports["n"]) if reports else 0, "ledger": int(ledger["n"]) if ledger else 0}

    def repeated_ledger_keys(self) -> int:
        """Ledger keys recorded more than once (the primary key should make this 0)."""
        with self._conn() as conn:
            row = conn.execute(
                "SELECT count(*) AS n FROM (SELECT key FROM ledger GROUP BY key HAVING count(*) > 1) k"
            ).fetchone()
        return int(row["n"]) if row else 0

    def chunk_point_ids(self) -> list[str]:
        """Every chunk row's point id (all models): what Qdrant should hold, one point each."""
        with self._conn() as conn:
            rows = conn.execute("SELECT point_id FROM chunks").fetchall()
        return [str(r["point_id"]) for r in rows]

    # ------------------------------------------------------------ embedding cache

    def get_vectors(self, keys: list[str]) -> dict[str, bytes]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT key, vector FROM embedding_cache WHERE key = ANY(%s)", (keys,)
            ).fetchall()
        return {r["key"]: bytes(r["vector"]) for r in rows}

    def put_vectors(self, model: str, items: dict[str, bytes]) -> None:
        if not items:
            return
        with self._conn() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO embedding_cache (key, model, vector) VALUES (%s, %s, %s)"
                " ON CONFLICT (key) DO NOTHING",
                [(k, model, v) for k, v in items.items()],
            )

    # ------------------------------------------------------------ model reply cache

    def llm_cache_get(self, key: str) -> dict | None:
        """A recorded model reply (model, content, usage), or None."""
        with self._conn() as conn:
            return conn.execute(
                "SELECT model, content, usage FROM llm_cache WHERE key = %s", (key,)
            ).fetchone()

    def llm_cache_put(self, key: str, model: str, content: str, usage: dict) -> None:
        # DO NOTHING: the first recorded reply is the one that was billed and reported.
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO llm_cache (key, model, content, usage) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (key) DO NOTHING",
                (key, model, content, Jsonb(usage)),
            )


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, default=str)
