"""Document parsing: PDF (pymupdf, page locators), HTML (trafilatura, headings kept), Markdown and text.

Parsed text is normalised once here (lines of a paragraph joined, paragraphs split by blank
lines) and never rewritten afterwards: every quote the engine makes is a substring of it.

A paragraph longer than ``MAX_PARAGRAPH_CHARS`` (a 4 MB line, a log file with no blank line) is
broken into paragraphs of at most ``_PIECE_CHARS``, at a sentence end, else a newline, else a
space: downstream, a paragraph is scanned line by line and a sentence becomes at most one chunk,
so an unbroken megabyte would become one giant chunk that the embedder takes hours over.

This module parses in the calling process; ``deepsci.sandbox.parse_isolated`` is the entry point
that runs the PDF and HTML parsers in a child process under limits.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from temporalio.exceptions import ApplicationError

from deepsci.errors import BadDocument, non_retryable

__all__ = ["Segment", "ParsedDocument", "sniff_kind", "parse_document", "content_hash"]

MAX_PDF_PAGES = 2000
MAX_PARAGRAPH_CHARS = 4000
_PIECE_CHARS = 2000
_PARA_SPLIT = re.compile(r"(\n[ \t]*\n)")
_SENT_BREAK = re.compile(r"[.!?][\"')\]]*(\s)")


@dataclass(frozen=True)
class Segment:
    """A located span of the parsed text: a PDF page or a section under a heading."""

    locator: str
    start: int
    end: int


@dataclass
class ParsedDocument:
    title: str
    kind: str
    text: str
    segments: list[Segment] = field(default_factory=list)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sniff_kind(data: bytes, uri: str) -> str:
    """The document's kind by its bytes first (a PDF is a PDF whatever its name), then its name."""
    head = data[:2048].lstrip()
    if head.startswith(b"%PDF-"):
        return "pdf"
    lowered = head.lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<body" in lowered:
        return "html"
    suffix = PurePosixPath(uri.split("?")[0]).suffix.lower()
    if suffix == ".pdf":
        return "pdf"  # named .pdf without PDF bytes: the PDF parser gives the precise error
    if suffix in (".html", ".htm"):
        return "html"
    if suffix in (".md", ".markdown"):
        return "markdown"
    return "text"


def _decode(data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise non_retryable(BadDocument, "binary content (NUL bytes) where text was expected")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    bad = sum(1 for c in text[:4096] if (ord(c) < 32 and c not in "\n\r\t") or c == "\ufffd")
    if bad > max(8, len(text[:4096]) // 20):
        raise non_retryable(BadDocument, "not readable text (too many control or invalid bytes)")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _join_lines(paragraph: str) -> str:
    return re.sub(r"[ \t]*\n[ \t]*", " ", paragraph.strip())


def _split_paragraph(para: str) -> str:
    """Break one overlong paragraph into pieces of at most ``_PIECE_CHARS`` joined by blank lines."""
    pieces: list[str] = []
    start = 0
    while len(para) - start > _PIECE_CHARS:
        window = para[start : start + _PIECE_CHARS + 1]
        half = _PIECE_CHARS // 2
        cut = -1
        for m in _SENT_BREAK.finditer(window, half):
            cut = m.start(1)  # the whitespace after the last sentence end in the window
        if cut < 0:
            cut = window.rfind("\n", half)
        if cut < 0:
            cut = max(window.rfind(" ", half), window.rfind("\t", half))
        if cut < 0:  # no whitespace at all: cut the word
            pieces.append(para[start : start + _PIECE_CHARS])
            start += _PIECE_CHARS
            continue
        pieces.append(para[start : start + cut])
        start += cut + 1  # the whitespace at the cut becomes the blank line
    pieces.append(para[start:])
    return "\n\n".join(pieces)


def _cap_paragraphs(text: str) -> str:
    """``text`` with every paragraph longer than ``MAX_PARAGRAPH_CHARS`` broken up (see the module doc)."""
    if len(text) <= MAX_PARAGRAPH_CHARS:
        return text
    parts = _PARA_SPLIT.split(text)  # paragraphs at even indexes, their separators at odd ones
    for i in range(0, len(parts), 2):
        if len(parts[i]) > MAX_PARAGRAPH_CHARS:
            parts[i] = _split_paragraph(parts[i])
    return "".join(parts)


def _pdf_pages(doc) -> tuple[str, list[str], list[Segment]]:
    if doc.page_count == 0:
        raise non_retryable(BadDocument, "PDF has no pages")
    if doc.page_count > MAX_PDF_PAGES:
        raise non_retryable(BadDocument, f"PDF has {doc.page_count} pages (limit {MAX_PDF_PAGES})")
    title = (doc.metadata or {}).get("title") or ""
    parts: list[str] = []
    segments: list[Segment] = []
    pos = 0
    for number, page in enumerate(doc, start=1):
        blocks = page.get_text("blocks", sort=True)
        paras = [_join_lines(b[4]) for b in blocks if b[6] == 0 and b[4].strip()]
        page_text = _cap_paragraphs("\n\n".join(p for p in paras if p))
        if not page_text:
            continue
        if parts:
            pos += 2
        segments.append(Segment(f"p. {number}", pos, pos + len(page_text)))
        parts.append(page_text)
        pos += len(page_text)
    return title, parts, segments


def _parse_pdf(data: bytes) -> ParsedDocument:
    import pymupdf

    try:
        doc = pymupdf.open(stream=data, filetype="pdf")
    except MemoryError:
        raise
    except Exception as exc:  # pymupdf raises several types for broken files
        raise non_retryable(BadDocument, f"malformed PDF: {exc}") from exc
    with doc:
        if doc.needs_pass:
            raise non_retryable(BadDocument, "encrypted PDF (password required)")
        try:
            title, parts, segments = _pdf_pages(doc)
        except (ApplicationError, MemoryError):
            raise
        except Exception as exc:  # a broken page tree or content stream surfaces here, not at open
            raise non_retryable(BadDocument, f"malformed PDF: {exc}") from exc
    text = "\n\n".join(parts)
    if not text.strip():
        raise non_retryable(BadDocument, "PDF has no extractable text (scanned images?)")
    if not title:
        title = text.split("\n", 1)[0][:120]
    return ParsedDocument(title=title.strip(), kind="pdf", text=text, segments=segments)


def _sections(text: str, kind: str, title: str) -> ParsedDocument:
    """Split Markdown-like text into heading sections; locator is the nearest heading."""
    segments: list[Segment] = []
    heading, seg_start = title or "top", 0
    for m in re.finditer(r"^#{1,6}[ \t]+(.+)$", text, flags=re.M):
        if m.start() > seg_start and text[seg_start : m.start()].strip():
            segments.append(Segment(f"§ {heading}", seg_start, m.start()))
        heading, seg_start = m.group(1).strip(), m.start()
    if text[seg_start:].strip():
        segments.append(Segment(f"§ {heading}", seg_start, len(text)))
    if not title:
        first = re.search(r"^#[ \t]+(.+)$", text, flags=re.M)
        title = first.group(1).strip() if first else text.strip().split("\n", 1)[0][:120]
    return ParsedDocument(title=title, kind=kind, text=text, segments=segments)


def _parse_html(data: bytes) -> ParsedDocument:
    import trafilatura

    html = _decode(data)
    extracted = trafilatura.extract(
        html,
        output_format="markdown",
        include_comments=False,
        include_tables=True,
        include_links=False,
        include_images=False,
        favor_recall=True,
        with_metadata=False,
    )
    if not extracted or not extracted.strip():
        raise non_retryable(BadDocument, "HTML has no main text to extract")
    meta = trafilatura.extract_metadata(html)
    title = (meta.title if meta and meta.title else "") or ""
    paras = [_join_lines(p) if not p.lstrip().startswith(("-", "*", "|")) else p.strip()
             for p in re.split(r"\n\s*\n", extracted)]
    text = _cap_paragraphs("\n\n".join(p for p in paras if p))
    return _sections(text, "html", title)


def parse_document(data: bytes, uri: str, max_bytes: int) -> ParsedDocument:
    """Parse raw bytes; raises a non-retryable ``BadDocument`` ApplicationError with the reason."""
    if not data:
        raise non_retryable(BadDocument, "empty document (0 bytes)")
    if len(data) > max_bytes:
        raise non_retryable(BadDocument, f"document is {len(data)} bytes (limit {max_bytes})")
    kind = sniff_kind(data, uri)
    if kind == "pdf":
        return _parse_pdf(data)
    if kind == "html":
        return _parse_html(data)
    text = _decode(data)
    if not text.strip():
        raise non_retryable(BadDocument, "document has no text")
    text = _cap_paragraphs(text)
    if kind == "markdown":
        return _sections(text, "markdown", "")
    title = text.strip().split("\n", 1)[0][:120]
    return ParsedDocument(title=title, kind="text", text=text, segments=[Segment("§ text", 0, len(text))])
