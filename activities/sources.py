"""Source activities: search a provider, and fetch + parse one source into the artifact store.

PDF and HTML are parsed in a child process under limits (``deepsci.sandbox.parse_isolated``):
a parser crash, hang or memory blow-up fails that one source with a ``BadDocument`` reason,
never the worker. Both activities heartbeat while a parser child runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from temporalio import activity

from deepsci.contracts import FetchParseInput, SearchInput, SearchResult, SourceRecord
from deepsci.errors import BadDocument, BlockedSource, InvalidInput, non_retryable
from deepsci.parsing import content_hash
from deepsci.sandbox import ParseLimits, parse_isolated

if TYPE_CHECKING:
    from activities.deps import Deps

__all__ = ["SourceActivities"]


class SourceActivities:
    def __init__(self, deps: Deps):
        self.deps = deps

    @activity.defn(name="search")
    def search(self, inp: SearchInput) -> SearchResult:
        unknown = [p for p in inp.providers if p != "local"]
        if unknown:
            raise non_retryable(InvalidInput, f"search providers not available: {', '.join(unknown)}")
        corpus = inp.corpus or str(self.deps.settings.corpus_dir)
        limits = ParseLimits.from_settings(self.deps.settings)
        # The catalog parses every new or changed file (in parser children): heartbeat meanwhile.
        hits = self.deps.corpus.search(corpus, inp.query, inp.limit, limits=limits,
                                       progress=lambda: activity.heartbeat("cataloguing"))
        return SearchResult(hits=hits)

    def _read(self, uri: str) -> bytes:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise non_retryable(BlockedSource, f"unsupported URI scheme {parsed.scheme!r}: {uri}")
        path = Path(unquote(parsed.path))
        if not path.is_file():
            raise non_retryable(BadDocument, f"file not found: {path}")
        size = path.stat().st_size
        limit = self.deps.settings.max_document_bytes
        if size > limit:
            raise non_retryable(BadDocument, f"document is {size} bytes (limit {limit})")
        return path.read_bytes()

    @activity.defn(name="fetch_parse")
    def fetch_parse(self, inp: FetchParseInput) -> SourceRecord:
        data = self._read(inp.uri)
        digest = content_hash(data)
        store = self.deps.store
        doc = store.get_document(digest)  # content-addressed: the same bytes are parsed once
        if doc is None:
            activity.heartbeat("parsing")
            settings = self.deps.settings
            parsed = parse_isolated(data, inp.uri, settings.max_document_bytes, ParseLimits.from_settings(settings),
                                    on_wait=lambda: activity.heartbeat("parsing"))
            segments = [{"locator": s.locator, "start": s.start, "end": s.end} for s in parsed.segments]
            store.put_document(digest, inp.uri, parsed.title, parsed.kind, parsed.text, segments, len(data))
            doc = {"title": parsed.title, "kind": parsed.kind, "text": parsed.text}
        return SourceRecord(
            source_id=digest[:16], uri=inp.uri, title=doc["title"] or inp.title, kind=doc["kind"],
            status="parsed", content_hash=digest, chars=len(doc["text"]),
        )
