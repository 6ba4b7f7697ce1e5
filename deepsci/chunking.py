"""Chunking: sentence-aligned spans of the parsed text, never crossing a page or section.

A chunk is at most ``max_chars`` long even when one sentence is longer (a table row, a run-on
list): such a sentence is cut at the last whitespace that fits, else mid-word.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from deepsci.parsing import Segment
from deepsci.text import sentence_spans

__all__ = ["Chunk", "chunk_document", "point_id"]

_POINT_NS = uuid.UUID("6f1c9f0e-5a3b-4c1d-9d2e-8b7a6c5d4e3f")


def point_id(content_hash: str, idx: int, model: str) -> str:
    """Deterministic vector point id: the same chunk of the same bytes under one model, one id."""
    return str(uuid.uuid5(_POINT_NS, f"{content_hash}:{idx}:{model}"))


@dataclass(frozen=True)
class Chunk:
    idx: int
    locator: str
    start: int
    end: int
    text: str


def chunk_document(text: str, segments: list[Segment], max_chars: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    for seg in segments or [Segment("§ text", 0, len(text))]:
        cur_start: int | None = None
        cur_end = 0
        for s, e in _capped(text, sentence_spans(text, seg.start, seg.end), max_chars):
            if cur_start is not None and e - cur_start > max_chars:
                chunks.append(Chunk(len(chunks), seg.locator, cur_start, cur_end, text[cur_start:cur_end]))
                cur_start = None
            if cur_start is None:
                cur_start = s
            cur_end = e
        if cur_start is not None:
            chunks.append(Chunk(len(chunks), seg.locator, cur_start, cur_end, text[cur_start:cur_end]))
    return chunks


def _capped(text: str, spans: list[tuple[int, int]], max_chars: int) -> list[tuple[int, int]]:
    """``spans`` with every span longer than ``max_chars`` cut into pieces that fit."""
    out: list[tuple[int, int]] = []
    for s, e in spans:
        while e - s > max_chars:
            cut = max(text.rfind(" ", s + max_chars // 2, s + max_chars + 1),
                      text.rfind("\n", s + max_chars // 2, s + max_chars + 1))
            if cut <= s:
                cut = s + max_chars
            piece_end = cut
            while piece_end > s and text[piece_end - 1].isspace():
                piece_end -= 1
            out.append((s, piece_end))
            s = cut
            while s < e and text[s].isspace():
                s += 1
        if e > s:
            out.append((s, e))
    return out
