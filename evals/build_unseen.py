"""Build the unseen eval corpus (evals/datasets/celery_docs.json) from Celery's source distribution.

    python evals/build_unseen.py SDIST_TARBALL OUT_DIR

`make install` downloads the pinned sdist (celery==5.4.0) and runs this script; the output folder is
gitignored. The documents are Celery's own user manual (reStructuredText, Creative Commons
Attribution-ShareAlike 4.0, Ask Solem and contributors; the software is BSD-3-Clause), which nobody
here wrote. They ship as .rst only, so this script turns a fixed selection of them into the three
kinds a real corpus holds: a third PDF (laid out with pymupdf's Base-14 fonts, as
evals/build_corpus.py does), a third HTML, a third Markdown. The conversion is a light, generic
reStructuredText reader (headings, paragraphs, lists, literal blocks; inline roles and markup
reduced to their text); it knows nothing of the questions.

The output is deterministic: same tarball, same bytes (fixed PDF metadata and no new file id, sorted
inputs, ASCII text).
"""

from __future__ import annotations

import html
import re
import sys
import tarfile
import unicodedata
from pathlib import Path

import pymupdf

from evals.build_corpus import H2_SPACE_BEFORE, LINE_FACTOR, MARGIN, PAGE, STYLES

SDIST_ROOT = "celery-5.4.0/docs/"
FIXED_DATE = "D:20240601120000Z"
AUTHOR = "Ask Solem and contributors (Celery User Manual, CC BY-SA 4.0)"

# source .rst (under docs/) -> output name; the suffix decides the kind.
DOCUMENTS = {
    "getting-started/introduction.rst": "introduction.html",
    "getting-started/first-steps-with-celery.rst": "first-steps-with-celery.md",
    "getting-started/next-steps.rst": "next-steps.html",
    "getting-started/backends-and-brokers/rabbitmq.rst": "broker-rabbitmq.md",
    "getting-started/backends-and-brokers/redis.rst": "broker-redis.html",
    "getting-started/backends-and-brokers/sqs.rst": "broker-sqs.pdf",
    "userguide/application.rst": "application.md",
    "userguide/tasks.rst": "tasks.md",
    "userguide/calling.rst": "calling-tasks.md",
    "userguide/canvas.rst": "canvas-workflows.html",
    "userguide/workers.rst": "workers-guide.md",
    "userguide/daemonizing.rst": "daemonizing.pdf",
    "userguide/periodic-tasks.rst": "periodic-tasks.pdf",
    "userguide/routing.rst": "routing-tasks.pdf",
    "userguide/monitoring.rst": "monitoring-and-management.html",
    "userguide/security.rst": "security.pdf",
    "userguide/optimizing.rst": "optimizing.pdf",
    "userguide/debugging.rst": "debugging.pdf",
    "userguide/testing.rst": "testing.html",
    "userguide/signals.rst": "signals.html",
    "glossary.rst": "glossary.md",
}

_ADORN = set("=-~^*+#\"'`:._")
_PUNCT = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
          "\u2026": "...", "\u00a0": " ", "\u2192": "->", "\u00d7": "x"}


def ascii_text(text: str) -> str:
    text = "".join(_PUNCT.get(c, c) for c in text)
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def inline(text: str) -> str:
    """Inline markup reduced to its text: roles, literals, links, emphasis, substitutions."""
    text = re.sub(r":[\w:+.-]+:`([^`]*?)\s*<[^>`]*>`", r"\1", text)  # :ref:`title <target>`
    text = re.sub(r":[\w:+.-]+:`[~!]?([^`]*)`", lambda m: m.group(1).strip(), text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"`([^`<]*?)\s*<[^>`]*>`__?", r"\1", text)  # `text <url>`_
    text = re.sub(r"`([^`]+)`_{0,2}", r"\1", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"\1", text)
    text = re.sub(r"\|[\w-]+\|_?", "", text)
    text = re.sub(r"\\(.)", r"\1", text)
    return re.sub(r"[ \t]+", " ", text).strip()


def _is_adornment(line: str) -> bool:
    s = line.strip()
    return len(s) >= 3 and len(set(s)) == 1 and s[0] in _ADORN and line == line.rstrip() and not line[0].isspace()


def rst_blocks(source: str) -> list[tuple[str, str]]:
    """(kind, text) blocks: title, h2, p, li, code."""
    lines = ascii_text(source).replace("\t", "    ").split("\n")
    blocks: list[tuple[str, str]] = []
    heading_chars: list[str] = []
    i, n = 0, len(lines)
    literal_next = False
    while i < n:
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        # headings: optional overline, text, underline
        if _is_adornment(line) and i + 2 < n and _is_adornment(lines[i + 2]) and lines[i + 1].strip():
            char, text, i = line[0] + "o", lines[i + 1].strip(), i + 3
        elif indent == 0 and i + 1 < n and _is_adornment(lines[i + 1]) and not _is_adornment(line):
            char, text, i = lines[i + 1][0], line.strip(), i + 2
        else:
            char = ""
        if char:
            if char not in heading_chars:
                heading_chars.append(char)
            kind = "title" if heading_chars.index(char) == 0 and not any(k == "title" for k, _ in blocks) else "h2"
            blocks.append((kind, inline(text)))
            literal_next = False
            continue
        if _is_adornment(line):  # a stray transition line
            i += 1
            continue
        # gather the block: lines up to a blank line at this indent (indented literal bodies too)
        start = i
        i += 1
        while i < n and lines[i].strip():
            i += 1
        chunk = lines[start:i]
        first = chunk[0].strip()
        if indent > 0 and literal_next:
            # literal block: keep going through blank lines while the indent holds
            while i + 1 < n and not lines[i].strip() and (len(lines[i + 1]) - len(lines[i + 1].lstrip())) >= indent \
                    and lines[i + 1].strip():
                j = i + 1
                while j < n and lines[j].strip():
                    j += 1
                chunk += [""] + lines[i + 1:j]
                i = j
            body = "\n".join(ln[indent:] if len(ln) >= indent else ln.strip() for ln in chunk).rstrip()
            blocks.append(("code", body))
            literal_next = False
            continue
        if first.startswith(".. "):
            # a directive or comment: its first line goes; a code directive's body is literal
            head = first[3:]
            literal_next = bool(re.match(r"(code-block|code|sourcecode)::", head))
            rest = [ln for ln in chunk[1:] if not re.match(r"\s*:[\w-]+:( |$)", ln)]
            if rest and re.match(r"(note|warning|tip|important|admonition|versionadded|versionchanged|"
                                 r"deprecated|seealso|attention|caution|hint)::", head):
                blocks.append(("p", inline(" ".join(ln.strip() for ln in rest))))
            elif rest and literal_next:
                blocks.append(("code", "\n".join(ln.strip() for ln in rest)))
                literal_next = False
            continue
        text = " ".join(ln.strip() for ln in chunk)
        literal_next = text.endswith("::")
        if literal_next:
            text = text[:-2].rstrip() + (":" if not text[:-2].rstrip().endswith(":") else "")
            if text == ":":
                continue
        if re.match(r"[-*+] ", first) or re.match(r"(\d+|#)\. ", first):
            items: list[str] = []
            for ln in chunk:
                s = ln.strip()
                if re.match(r"[-*+] ", s) or re.match(r"(\d+|#)\. ", s):
                    items.append(re.sub(r"^([-*+]|\d+\.|#\.) ", "", s))
                elif items:
                    items[-1] += " " + s
            blocks.extend(("li", inline(it)) for it in items)
            continue
        text = inline(text)
        if text:
            blocks.append(("p", text))
    if not blocks or blocks[0][0] != "title":
        raise ValueError("document has no title")
    return blocks


# --- writers ----------------------------------------------------------------------------------------

def to_markdown(blocks: list[tuple[str, str]]) -> str:
    out = []
    for kind, text in blocks:
        if kind == "title":
            out.append(f"# {text}")
        elif kind == "h2":
            out.append(f"## {text}")
        elif kind == "li":
            out.append(f"- {text}")
        elif kind == "code":
            out.append(f"```\n{text}\n```")
        else:
            out.append(text)
    return "\n\n".join(out) + "\n"


def to_html(blocks: list[tuple[str, str]]) -> str:
    title = html.escape(blocks[0][1])
    body = []
    in_list = False
    for kind, text in blocks:
        if kind != "li" and in_list:
            body.append("</ul>")
            in_list = False
        t = html.escape(text)
        if kind == "title":
            body.append(f"<h1>{t}</h1>")
        elif kind == "h2":
            body.append(f"<h2>{t}</h2>")
        elif kind == "li":
            if not in_list:
                body.append("<ul>")
                in_list = True
            body.append(f"<li>{t}</li>")
        elif kind == "code":
            body.append(f"<pre><code>{t}</code></pre>")
        else:
            body.append(f"<p>{t}</p>")
    if in_list:
        body.append("</ul>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{title}</title>\n</head>\n<body>\n<article>\n" + "\n".join(body)
            + "\n</article>\n</body>\n</html>\n")


_CODE_STYLE = ("cour", 8.0, 6.0)


def _wrap(text: str, fontname: str, fontsize: float, width: float) -> list[str]:
    """Wrap at spaces; a word wider than the line (a long URL or dotted name) is cut by characters."""
    def fits(s: str) -> bool:
        return pymupdf.get_text_length(s, fontname=fontname, fontsize=fontsize) <= width

    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = word if not current else current + " " + word
        if fits(candidate):
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while not fits(current):
            cut = len(current) - 1
            while cut > 1 and not fits(current[:cut]):
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
    if current:
        lines.append(current)
    return lines


def to_pdf(blocks: list[tuple[str, str]], subject: str) -> bytes:
    width = PAGE.width - 2 * MARGIN
    bottom = PAGE.height - MARGIN
    styles = dict(STYLES, li=STYLES["p"], code=_CODE_STYLE)
    wrapped: list[tuple[str, list[str], float]] = []
    for kind, text in blocks:
        fontname, fontsize, after = styles[kind]
        if kind == "code":
            lines = [piece for ln in text.split("\n") for piece in (_wrap(ln, fontname, fontsize, width) or [""])]
        else:
            lines = _wrap(("- " + text) if kind == "li" else text, fontname, fontsize, width)
        wrapped.append((kind, lines, len(lines) * fontsize * LINE_FACTOR + after))

    doc = pymupdf.open()
    page = doc.new_page(width=PAGE.width, height=PAGE.height)
    y = MARGIN
    for index, (kind, lines, height) in enumerate(wrapped):
        fontname, fontsize, after = styles[kind]
        step = fontsize * LINE_FACTOR
        needed = height + (H2_SPACE_BEFORE if kind == "h2" else 0.0)
        if kind == "h2" and index + 1 < len(wrapped):
            needed += min(wrapped[index + 1][2], 4 * step)  # keep a heading with its next lines
        # a paragraph that fits on a page is never split, so its sentences stay on one page
        if y + min(needed, bottom - MARGIN) > bottom and y > MARGIN:
            page = doc.new_page(width=PAGE.width, height=PAGE.height)
            y = MARGIN
        if kind == "h2" and y > MARGIN:
            y += H2_SPACE_BEFORE
        for line in lines:
            if y + step > bottom:  # only a block taller than a page gets here
                page = doc.new_page(width=PAGE.width, height=PAGE.height)
                y = MARGIN
            y += step
            page.insert_text((MARGIN, y - fontsize * (LINE_FACTOR - 1.0) / 2), line,
                             fontname=fontname, fontsize=fontsize)
        y += after
    doc.set_metadata({
        "title": blocks[0][1], "author": AUTHOR, "subject": subject, "keywords": "celery",
        "creator": "evals/build_unseen.py", "producer": "PyMuPDF",
        "creationDate": FIXED_DATE, "modDate": FIXED_DATE,
    })
    data = doc.tobytes(garbage=4, deflate=True, no_new_id=True)
    doc.close()
    return data


def build(sdist: Path, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(sdist) as tar:
        for source, name in sorted(DOCUMENTS.items()):
            member = tar.extractfile(SDIST_ROOT + source)
            if member is None:
                raise FileNotFoundError(source)
            blocks = rst_blocks(member.read().decode("utf-8"))
            path = out_dir / name
            if name.endswith(".pdf"):
                path.write_bytes(to_pdf(blocks, f"Celery 5.4.0 documentation, docs/{source}"))
            elif name.endswith(".html"):
                path.write_text(to_html(blocks), encoding="ascii")
            else:
                path.write_text(to_markdown(blocks), encoding="ascii")
            written.append(path)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    paths = build(Path(argv[0]), Path(argv[1]))
    print(f"build_unseen: wrote {len(paths)} documents to {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
