"""Source activities: search a provider, and fetch + parse one source into the artifact store.

PDF and HTML are parsed in a child process under limits (``deepsci.sandbox.parse_isolated``):
a parser crash, hang or memory blow-up fails that one source with a ``BadDocument`` reason,
never the worker. Both activities heartbeat while a parser child runs.

``http``/``https`` sources are read by the one safe fetcher (``deepsci.fetcher``: internal
addresses refused, every redirect hop checked, the body capped); web search goes through the
provider chain of ``deepsci.search_providers`` (docs/fetching-and-search.md).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from temporalio import activity
from temporalio.exceptions import ApplicationError

from deepsci.charsets import charset_from_content_type
from deepsci.contracts import FetchParseInput, SearchInput, SearchResult, SourceRecord
from deepsci.errors import ErrorType, non_retryable
from deepsci.fetcher import SafeFetcher
from deepsci.observe import metrics as m
from deepsci.observe import span
from deepsci.parsing import content_hash
from deepsci.sandbox import ParseLimits, parse_isolated
from deepsci.search_providers import build_providers, search_chain

if TYPE_CHECKING:
    from activities.deps import Deps

__all__ = ["SourceActivities"]


class SourceActivities:
    def __init__(self, deps: Deps, fetcher: SafeFetcher | None = None):
        self.deps = deps
        self._fetcher = fetcher
        self._fetcher_lock = threading.Lock()

    @property
    def fetcher(self) -> SafeFetcher:
        """One safe fetcher per worker process (built on first use from the deps' settings)."""
        with self._fetcher_lock:
            if self._fetcher is None:
                self._fetcher = SafeFetcher.from_settings(self.deps.settings)
            return self._fetcher

    def _local(self, corpus: str | None):
        def search(query: str, limit: int):
            limits = ParseLimits.from_settings(self.deps.settings)
            # The catalog parses every new or changed file (in parser children): heartbeat meanwhile.
            return self.deps.corpus.search(corpus or str(self.deps.settings.corpus_dir), query, limit,
                                           limits=limits, progress=lambda: activity.heartbeat("cataloguing"))
        return search

    @activity.defn(name="search")
    def search(self, inp: SearchInput) -> SearchResult:
        providers = build_providers(inp.providers or ["local"], self.deps.settings, local=self._local(inp.corpus))
        chain = ",".join(inp.providers or ["local"])
        outcome = "error"
        try:
            with span("search", **{"deepsci.search.providers": chain, "deepsci.search.limit": inp.limit}) as sp:
                hits = search_chain(providers, inp.query, inp.limit,
                                    on_error=lambda name, err: activity.logger.warning(
                                        "search provider %s failed: %s", name, err))
                sp.set_attribute("deepsci.search.hits", len(hits))
            outcome = "ok"
        finally:
            m.SEARCHES.add(1, {"providers": chain, "outcome": outcome})
            for p in providers:
                close = getattr(p, "close", None)
                if close:
                    close()
        return SearchResult(hits=hits)

    def _traced_read(self, uri: str) -> tuple[bytes, str, str | None]:
        """``_read`` in a ``fetch`` span (host, bytes, kind, outcome) and the fetch metrics."""
        parsed = urlparse(uri)
        host = parsed.hostname or "local"
        started, outcome, kind = time.perf_counter(), "error", _kind(parsed.path)
        try:
            with span("fetch", **{"server.address": host, "url.scheme": parsed.scheme}) as sp:
                data, name, charset = self._read(uri)
                kind = _kind(name)
                sp.set_attributes({"deepsci.fetch.bytes": len(data), "deepsci.fetch.kind": kind,
                                   "deepsci.outcome": "ok"})
            outcome = "ok"
            return data, name, charset
        except ApplicationError as err:
            outcome = str(err.type or "error")
            raise
        finally:
            m.FETCHES.add(1, {"kind": kind, "outcome": outcome})
            m.FETCH_DURATION.record(time.perf_counter() - started, {"kind": kind})

    def _read(self, uri: str) -> tuple[bytes, str, str | None]:
        """The source's bytes, the name to parse them under, and the charset a server declared."""
        parsed = urlparse(uri)
        if parsed.scheme in ("http", "https"):
            fetched = self.fetcher.fetch(uri, progress=lambda: activity.heartbeat("fetching"))
            return fetched.data, fetched.parse_name, charset_from_content_type(fetched.content_type)
        if parsed.scheme != "file":
            raise non_retryable(ErrorType.BLOCKED_SOURCE, f"unsupported URI scheme {parsed.scheme!r}: {uri}")
        path = Path(unquote(parsed.path))
        if not path.is_file():
            raise non_retryable(ErrorType.BAD_DOCUMENT, f"file not found: {path}")
        size = path.stat().st_size
        limit = self.deps.settings.max_document_bytes
        if size > limit:
            raise non_retryable(ErrorType.BAD_DOCUMENT, f"document is {size} bytes (limit {limit})")
        return path.read_bytes(), uri, None

    @activity.defn(name="fetch_parse")
    def fetch_parse(self, inp: FetchParseInput) -> SourceRecord:
        data, name, charset = self._traced_read(inp.uri)
        digest = content_hash(data)
        store = self.deps.store
        doc = store.get_document(digest)  # content-addressed: the same bytes are parsed once
        if doc is None:
            # A document that failed to parse fails again in this run without another parser
            # child (several sub-questions often find the same broken file). Per run, not
            # forever: a wall-clock failure under load may pass in a later run.
            failure_key = f"{_run_id(inp)}/parse-failure/{digest}"
            known = _recorded(store, failure_key)
            if known is not None:
                raise non_retryable(ErrorType.BAD_DOCUMENT, known["reason"])
            activity.heartbeat("parsing")
            settings = self.deps.settings
            started, outcome, kind = time.perf_counter(), "error", _kind(name)
            try:
                with span("parse", **{"deepsci.parse.kind": kind, "deepsci.parse.bytes": len(data)}) as sp:
                    parsed = parse_isolated(data, name, settings.max_document_bytes,
                                            ParseLimits.from_settings(settings),
                                            on_wait=lambda: activity.heartbeat("parsing"), charset=charset)
                    sp.set_attributes({"deepsci.parse.pages": len(parsed.segments),
                                       "deepsci.parse.chars": len(parsed.text), "deepsci.outcome": "parsed"})
                outcome = "parsed"
            except ApplicationError as err:
                outcome = str(err.type or "error")
                if err.non_retryable and err.type == ErrorType.BAD_DOCUMENT:
                    store.put_artifact(failure_key, "parse_failure", {"reason": err.message, "uri": inp.uri})
                raise
            finally:
                m.PARSES.add(1, {"kind": kind, "outcome": outcome})
                m.PARSE_DURATION.record(time.perf_counter() - started, {"kind": kind})
            segments = [{"locator": s.locator, "start": s.start, "end": s.end} for s in parsed.segments]
            store.put_document(digest, inp.uri, parsed.title, parsed.kind, parsed.text, segments, len(data))
            doc = {"title": parsed.title, "kind": parsed.kind, "text": parsed.text,
                   "pages": parsed.pages, "pages_without_text": parsed.pages_without_text}
        return SourceRecord(
            source_id=digest[:16], uri=inp.uri, title=doc["title"] or inp.title, kind=doc["kind"],
            status="parsed", content_hash=digest, chars=len(doc["text"]),
            pages=doc.get("pages", 0), pages_without_text=doc.get("pages_without_text", 0),
        )


def _kind(name: str) -> str:
    """The document kind a name's suffix suggests, for metric labels (a bounded set)."""
    suffix = Path(urlparse(name).path).suffix.lower().lstrip(".")
    return {"htm": "html", "markdown": "md"}.get(suffix, suffix) if suffix in (
        "pdf", "html", "htm", "md", "markdown", "txt") else "other"


def _run_id(inp: FetchParseInput) -> str:
    """The run the fetch belongs to. Inputs scheduled before ``run_id`` was added carry only the
    idempotency key, ``{run_id}/{sub_question}/fetch/{item}``: its first part is the run id."""
    return inp.run_id or inp.idempotency_key.split("/", 1)[0]


def _recorded(store, key: str) -> dict | None:
    try:
        return store.get_artifact(key)
    except KeyError:
        return None
