"""What gets stored from awkward real-world text: columns in order, words whole, no NULs, right charset."""

from __future__ import annotations

import pymupdf
import pytest
from temporalio.exceptions import ApplicationError

from deepsci.chunking import chunk_document
from deepsci.cleaning import clean
from deepsci.parsing import content_hash, parse_document
from deepsci.text import quote_in

LIMIT = 10 * 1024 * 1024
# Article 1 of the Universal Declaration of Human Rights, in the UN's official translations.
CZECH = "Všichni lidé rodí se svobodní a sobě rovní co do důstojnosti a práv."
CHINESE = "人人生而自由,在尊严和权利上一律平等。他们赋有理性和良心,并应以兄弟关系的精神相对待。"
LEFT = ["Durable workflows record every step in an event history.", "A replay rebuilds state from that history.",
        "Workers can crash at any moment without losing progress."]
RIGHT = ["Activities carry the side effects of a pipeline.", "Each activity retries under its own policy.",
         "Heartbeats tell the server that a long activity is alive."]


def _two_column_pdf() -> bytes:
    doc = pymupdf.open()
    page = doc.new_page()  # 595 x 842
    page.insert_textbox(pymupdf.Rect(50, 40, 545, 80), "Two columns on one page")
    for col, lines in ((pymupdf.Rect(50, 100, 280, 700), LEFT), (pymupdf.Rect(315, 100, 545, 700), RIGHT)):
        y = col.y0
        for line in lines:  # one block per sentence, side by side with the other column's
            page.insert_textbox(pymupdf.Rect(col.x0, y, col.x1, y + 60), line)
            y += 80
    page.insert_text((290, 815), "7")  # the page number, in the bottom margin
    return doc.tobytes()


def test_two_column_pdf_reads_one_column_then_the_other_without_page_numbers():
    doc = parse_document(_two_column_pdf(), "columns.pdf", LIMIT)
    text = doc.text
    positions = [text.index(s) for s in LEFT + RIGHT]  # every sentence whole, none interleaved
    assert positions == sorted(positions), text
    assert text.startswith("Two columns on one page")
    assert not text.rstrip().endswith("7")


def test_line_end_hyphens_and_ligatures_do_not_break_quotes():
    pdf = pymupdf.open()
    page = pdf.new_page()
    page.insert_text((72, 100), "Before the run the workers com-")
    page.insert_text((72, 114), "pile every well-known plan and keep the well-")
    page.insert_text((72, 128), "known ones.")
    doc = parse_document(pdf.tobytes(), "hyphens.pdf", LIMIT)
    assert "the workers compile every well-known plan and keep the well-known ones." in doc.text
    chunks = chunk_document(doc.text, doc.segments, 900)
    assert any(quote_in("the workers compile every well-known plan", c.text) for c in chunks)
    # A ligature in the source (or in the quote) is the same word after NFKC.
    stored = clean("The \ufb01rst \ufb02ow ﬁles the report.")
    assert stored == "The first flow files the report."
    assert quote_in("The ﬁrst ﬂow files", stored)


def test_nul_characters_in_pdf_text_are_stored_in_postgres(deps):
    pdf = pymupdf.open()
    pdf.new_page().insert_text((72, 100), "Leases\x00 expire after one minute.\x00")
    data = pdf.tobytes()
    doc = parse_document(data, "nul.pdf", LIMIT)
    assert "\x00" not in doc.text
    digest = content_hash(data)
    deps.store.put_document(digest, "file:///nul.pdf", doc.title, doc.kind, doc.text,
                            [{"locator": s.locator, "start": s.start, "end": s.end} for s in doc.segments], len(data))
    assert deps.store.get_document(digest)["text"] == "Leases expire after one minute."


@pytest.mark.parametrize("codec,sentence", [("windows-1250", CZECH), ("gb2312", CHINESE)])
@pytest.mark.parametrize("declared", ["meta", "header", "none"])
def test_html_in_a_legacy_charset_decodes_without_mojibake(codec, sentence, declared):
    meta = f'<meta charset="{codec}">' if declared == "meta" else ""
    body = " ".join([sentence] * 6)
    html = (f"<html><head>{meta}<title>UDHR</title></head><body><article><h1>Article 1</h1>"
            f"<p>{body}</p><p>{sentence}</p></article></body></html>").encode(codec)
    doc = parse_document(html, "page.html", LIMIT, charset=codec if declared == "header" else None)
    assert sentence in doc.text


def test_html_emphasis_leaves_no_markdown_markers():
    html = (b"<html><body><article><h1>Gates</h1><p>A plan gate <b>waits for a person</b> and a report gate "
            b"<em>may ask for changes</em> before the run publishes anything at all to the world.</p>"
            b"<p>Both gates have a deadline after which the run's policy decides what happens next.</p>"
            b"</article></body></html>")
    doc = parse_document(html, "gates.html", LIMIT)
    assert "A plan gate waits for a person and a report gate may ask for changes" in doc.text
    assert "*" not in doc.text


def test_one_long_sentence_still_makes_capped_chunks():
    sentence = "word " * 1200 + "end."
    text = f"A start. {sentence} A finish."
    doc = parse_document(text.encode(), "long.txt", LIMIT)
    chunks = chunk_document(doc.text, doc.segments, 900)
    assert max(len(c.text) for c in chunks) <= 900
    assert all(doc.text[c.start:c.end] == c.text for c in chunks)
    assert "".join("".join(c.text.split()) for c in chunks) == "".join(doc.text.split())  # nothing lost


def test_garbage_text_is_refused_with_its_reason():
    with pytest.raises(ApplicationError, match="text looks garbled"):
        parse_document(("#$%&" * 200).encode(), "noise.txt", LIMIT)
