"""Document parsing: PDF (pymupdf, page locators), HTML (trafilatura, headings kept), Markdown and text.

Parsed text is cleaned and normalised once here (``deepsci.cleaning``: NFKC, control characters
out, line-end hyphens joined; lines of a paragraph joined, paragraphs split by blank lines) and
never rewritten afterwards: every quote the engine makes is a substring of it.

PDF pages are read in reading order: on a two-column page the left column comes before the right
one (blocks sorted by position alone interleave the columns line by line), and lines that are only
a page number, in the top or bottom margin, are dropped. Bytes of HTML and text are decoded by
their declared charset, then detection (``deepsci.charsets``).

A paragraph longer than ``MAX_PARAGRAPH_CHARS`` (a 4 MB line, a log file with no blank line) is
broken into paragraphs of at most ``_PIECE_CHARS``, at a sentence end, else a newline, else a
space: downstream, a paragraph is scanned line by line and a sentence becomes at most one chunk,
so an unbroken megabyte would become one giant chunk that the embedder takes hours over.

This module imports no Temporal code (the parser children import it; ``temporalio`` costs them
0.4 s of start-up): ``parse_plain`` raises ``Refusal`` with a one-line reason, and
``parse_document`` turns that into the non-retryable ``BadDocument`` error. It parses in the
calling process; ``deepsci.sandbox.parse_isolated`` runs the PDF and HTML parsers in a child
process under limits.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from deepsci import charsets
from deepsci.cleaning import clean, dehyphenate, garbage_reason, hyphenated_words, strip_emphasis

__all__ = ["Segment", "ParsedDocument", "Refusal", "sniff_kind", "parse_document", "parse_plain", "content_hash"]

MAX_PDF_PAGES = 2000
MAX_PARAGRAPH_CHARS = 4000
_PIECE_CHARS = 2000
_PARA_SPLIT = re.compile(r"(\n[ \t]*\n)")
_SENT_BREAK = re.compile(r"[.!?][\"')\]]*(\s)")
_PAGE_NUMBER = re.compile(r"^\s*(?:page\s+)?[-\u2013\u2014]?\s*(?:\d{1,4}|[ivxlcdm]{1,7})\s*[-\u2013\u2014]?"
                          r"\s*(?:(?:of|/)\s*\d{1,4})?\s*$", re.I)
_MARGIN = 0.12  # share of the page height at top and bottom where a lone number is a page number


class Refusal(Exception):
    """A document that parses to nothing worth storing; ``str(err)`` is the one-line reason."""


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
    pages: int = 0  # PDF pages (0 for other kinds)
    pages_without_text: int = 0  # PDF pages that gave no text (scanned, drawings, blank)


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


def _decode(data: bytes, declared: str | None = None, *, html: bool = False) -> str:
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Refusal("binary content (NUL bytes) where text was expected")
    text = charsets.decode(data, declared, html=html)
    bad = sum(1 for c in text[:4096] if (ord(c) < 32 and c not in "\n\r\t") or c == "\ufffd")
    if bad > max(8, len(text[:4096]) // 20):
        raise Refusal("not readable text (too many control or invalid bytes)")
    return clean(text)


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


def _reading_order(blocks: list[tuple], x_mid: float) -> list[tuple]:
    """Text blocks in reading order: on a two-column page, each column top to bottom in turn.

    A block that spans the middle (a title, a wide figure caption) closes a band; within a band
    the left column is read before the right one. A page without blocks on both sides reads top
    to bottom.
    """
    by_y = sorted(blocks, key=lambda b: (round(b[1], 1), b[0]))
    left = [b for b in by_y if b[2] <= x_mid + 2]
    right = [b for b in by_y if b[0] >= x_mid - 2]
    if len(left) < 2 or len(right) < 2:
        return by_y
    ordered: list[tuple] = []
    band_left: list[tuple] = []
    band_right: list[tuple] = []
    for b in by_y:
        if b[2] <= x_mid + 2:
            band_left.append(b)
        elif b[0] >= x_mid - 2:
            band_right.append(b)
        else:  # spans both columns
            ordered += band_left + band_right + [b]
            band_left, band_right = [], []
    return ordered + band_left + band_right


def _page_blocks(page) -> list[tuple]:
    """The page's text blocks in reading order, page-number lines in the margins left out."""
    rect = page.rect
    height = rect.height or 1.0
    blocks = []
    for b in page.get_text("blocks"):
        if b[6] != 0 or not b[4].strip():
            continue
        in_margin = b[3] <= rect.y0 + _MARGIN * height or b[1] >= rect.y1 - _MARGIN * height
        if in_margin and _PAGE_NUMBER.match(b[4]):
            continue
        blocks.append(b)
    return _reading_order(blocks, (rect.x0 + rect.x1) / 2)


def _why_no_text(page) -> str:
    """What a page without text holds: "image", "form", "drawing" or "blank"."""
    if page.get_images(full=False):
        return "image"
    if page.first_widget is not None:
        return "form"
    if page.get_drawings():
        return "drawing"
    return "blank"


def _pages(n: int) -> str:
    return f"{n} page" if n == 1 else f"{n} pages"


def _no_text_reason(empty: dict[str, int], pages: int) -> str:
    if empty.get("image"):
        return (f"PDF is image-only: {empty['image']} of {pages} pages are scanned images without a text layer "
                "(no OCR here)")
    if empty.get("form"):
        return f"PDF has no text: {_pages(pages)} of form fields only"
    if empty.get("drawing"):
        return f"PDF has no text: {_pages(pages)} of vector drawings only (no text layer)"
    return f"PDF has no text: {_pages(pages)}, all blank"


def _pdf_pages(doc) -> tuple[str, list[str], list[Segment], dict[str, int]]:
    if doc.page_count == 0:
        raise Refusal("PDF has no pages")
    if doc.page_count > MAX_PDF_PAGES:
        raise Refusal(f"PDF has {doc.page_count} pages (limit {MAX_PDF_PAGES})")
    title = (doc.metadata or {}).get("title") or ""
    raw_pages: list[list[str]] = []
    empty: dict[str, int] = {}
    for page in doc:
        blocks = [clean(b[4]) for b in _page_blocks(page)]
        blocks = [b for b in blocks if b.strip()]
        if not blocks:
            why = _why_no_text(page)
            empty[why] = empty.get(why, 0) + 1
        raw_pages.append(blocks)
    # A word the document hyphenates inside a line keeps its hyphen when split at a line end.
    keep = hyphenated_words("\n".join(b.replace("\n", " ") for page in raw_pages for b in page))
    parts: list[str] = []
    segments: list[Segment] = []
    pos = 0
    for number, blocks in enumerate(raw_pages, start=1):
        paras = [_join_lines(dehyphenate(b, keep)) for b in blocks]
        page_text = _cap_paragraphs("\n\n".join(p for p in paras if p))
        if not page_text:
            continue
        if parts:
            pos += 2
        segments.append(Segment(f"p. {number}", pos, pos + len(page_text)))
        parts.append(page_text)
        pos += len(page_text)
    return title, parts, segments, empty


def _parse_pdf(data: bytes) -> ParsedDocument:
    import pymupdf

    try:
        doc = pymupdf.open(stream=data, filetype="pdf")
    except MemoryError:
        raise
    except Exception as exc:  # pymupdf raises several types for broken files
        raise Refusal(f"malformed PDF: {exc}") from exc
    with doc:
        if doc.needs_pass:
            raise Refusal("encrypted PDF (password required)")
        try:
            title, parts, segments, empty = _pdf_pages(doc)
        except (Refusal, MemoryError):
            raise
        except Exception as exc:  # a broken page tree or content stream surfaces here, not at open
            raise Refusal(f"malformed PDF: {exc}") from exc
        pages = doc.page_count
    text = "\n\n".join(parts)
    if not text.strip():
        raise Refusal(_no_text_reason(empty, pages))
    _refuse_garbage(text)
    if not title:
        title = text.split("\n", 1)[0][:120]
    return ParsedDocument(title=clean(title).strip(), kind="pdf", text=text, segments=segments, pages=pages,
                          pages_without_text=sum(empty.values()))


def _refuse_garbage(text: str) -> None:
    reason = garbage_reason(text)
    if reason:
        raise Refusal(reason)


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


def _parse_html(data: bytes, charset: str | None) -> ParsedDocument:
    import trafilatura

    html = _decode(data, charset, html=True)
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
        raise Refusal("HTML has no main text to extract")
    meta = trafilatura.extract_metadata(html)
    title = (meta.title if meta and meta.title else "") or ""
    extracted = strip_emphasis(clean(extracted))
    paras = [_join_lines(p) if not p.lstrip().startswith(("-", "*", "|")) else p.strip()
             for p in re.split(r"\n\s*\n", extracted)]
    text = _cap_paragraphs("\n\n".join(p for p in paras if p))
    _refuse_garbage(text)
    return _sections(text, "html", clean(title))


def parse_plain(data: bytes, uri: str, max_bytes: int, charset: str | None = None) -> ParsedDocument:
    """Parse raw bytes; raises ``Refusal`` with the reason (what the parser children run)."""
    if not data:
        raise Refusal("empty document (0 bytes)")
    if len(data) > max_bytes:
        raise Refusal(f"document is {len(data)} bytes (limit {max_bytes})")
    kind = sniff_kind(data, uri)
    if kind == "pdf":
        return _parse_pdf(data)
    if kind == "html":
        return _parse_html(data, charset)
    text = _decode(data, charset)
    if not text.strip():
        raise Refusal("document has no text")
    _refuse_garbage(text)
    text = _cap_paragraphs(text)
    if kind == "markdown":
        return _sections(text, "markdown", "")
    title = text.strip().split("\n", 1)[0][:120]
    return ParsedDocument(title=title, kind="text", text=text, segments=[Segment("§ text", 0, len(text))])


def parse_document(data: bytes, uri: str, max_bytes: int, charset: str | None = None) -> ParsedDocument:
    """Parse raw bytes; raises a non-retryable ``BadDocument`` ApplicationError with the reason."""
    try:
        return parse_plain(data, uri, max_bytes, charset)
    except Refusal as refusal:
        from deepsci.errors import ErrorType, non_retryable  # Temporal's error type: only where it is raised

        raise non_retryable(ErrorType.BAD_DOCUMENT, str(refusal)) from None
