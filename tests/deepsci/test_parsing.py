"""Parsing real documents: PDF pages as locators, HTML headings kept, bad input refused with a reason."""

from __future__ import annotations

import pymupdf
import pytest
from temporalio.exceptions import ApplicationError

from deepsci.parsing import parse_document, sniff_kind
from tests.helpers import CORPUS

LIMIT = 10 * 1024 * 1024


def _pdf(pages: list[str], **kw) -> bytes:
    doc = pymupdf.open()
    for text in pages:
        doc.new_page().insert_textbox(pymupdf.Rect(50, 50, 550, 800), text)
    return doc.tobytes(**kw)


def test_pdf_pages_become_locators():
    data = _pdf(["Heartbeats report liveness every ten seconds.", "Leases expire after one minute."])
    doc = parse_document(data, "x.pdf", LIMIT)
    assert doc.kind == "pdf"
    assert [s.locator for s in doc.segments] == ["p. 1", "p. 2"]
    second = doc.segments[1]
    assert doc.text[second.start:second.end] == "Leases expire after one minute."


def test_html_keeps_headings_and_drops_boilerplate():
    html = (b"<html><head><title>Breakers</title></head><body><nav>Home | Pricing | Login</nav>"
            b"<article><h1>Circuit breakers</h1><p>A breaker opens after five consecutive failures "
            b"and stays open for thirty seconds before it lets a trial request through.</p>"
            b"<h2>Half-open state</h2><p>In the half-open state a single probe decides whether "
            b"the breaker closes again or stays open for another cooling period.</p></article>"
            b"<footer>Copyright 2026 Example Corp</footer></body></html>")
    doc = parse_document(html, "page.html", LIMIT)
    assert doc.kind == "html"
    assert "## Half-open state" in doc.text or "# Half-open state" in doc.text
    assert [s.locator for s in doc.segments][-1] == "§ Half-open state"
    assert "Copyright" not in doc.text


def test_sample_corpus_parses():
    kinds = set()
    for path in sorted(CORPUS.iterdir()):
        doc = parse_document(path.read_bytes(), path.name, LIMIT)
        kinds.add(doc.kind)
        assert doc.title and len(doc.text) > 1000, path.name
    assert kinds == {"pdf", "html", "markdown"}


def test_sniffing_trusts_bytes_over_names():
    assert sniff_kind(_pdf(["x"]), "page.html") == "pdf"
    assert sniff_kind(b"<!DOCTYPE html><html><body>x</body></html>", "paper.pdf") == "html"


@pytest.mark.parametrize("data,name,reason", [
    (b"", "a.pdf", "empty document"),
    (b"%PDF-1.7\n1 0 obj <<", "a.pdf", "malformed PDF"),
    (bytes(range(256)) * 64, "a.txt", "binary content"),
    (b"plain words " * 10, "a.pdf", "malformed PDF"),
    (b"x" * 2048, "big.txt", "limit 1024"),
])
def test_bad_documents_fail_with_a_reason(data, name, reason):
    with pytest.raises(ApplicationError) as err:
        parse_document(data, name, 1024 if name == "big.txt" else LIMIT)
    assert err.value.non_retryable and err.value.type == "BadDocument"
    assert reason in str(err.value)


def test_encrypted_pdf_is_refused():
    data = _pdf(["secret"], encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="o", user_pw="u")
    with pytest.raises(ApplicationError, match="encrypted PDF"):
        parse_document(data, "locked.pdf", LIMIT)
