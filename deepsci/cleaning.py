"""Clean extracted text once, before it is stored: what every later quote is checked against.

- NFKC: ligatures and presentation forms ("ﬁ", "ﬂ", full-width letters) become plain letters,
  so a quote typed from the rendered page is found in the stored text;
- NUL and other control characters removed (Postgres refuses U+0000 in text; the rest is noise);
- words hyphenated at a line end are joined ("com-\\npile" -> "compile"), unless the document
  spells the word with a hyphen elsewhere ("well-\\nknown" stays "well-known");
- markdown emphasis markers (``**``, ``*``) that trafilatura writes around bold/italic HTML are
  dropped (headings and list markers stay: they shape sections and sentences);
- ``garbage_reason`` says why a text is not worth storing (a broken font encoding yields symbols,
  control characters or one glyph repeated), or None.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

__all__ = ["clean", "dehyphenate", "hyphenated_words", "strip_emphasis", "garbage_reason"]

# C0/C1 controls except tab and newline, plus zero-width / bidi marks that break word matching.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_LINE_END_HYPHEN = re.compile(r"(\w+)[-\u2010\u2011]\n[ \t]*([a-z]\w*)")
_HYPHENATED = re.compile(r"\b\w+-\w+\b")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_SPACE = re.compile(r"\s+")
_JUNK = re.compile("[\x00-\x1f\x7f-\x9f\ue000-\uf8ff\ufffd\ud800-\udfff]")  # controls, private use, invalid
_WORDISH = re.compile(r"[^\W_]")  # a letter or digit in any script
_ITALIC = re.compile(r"(?<![\w*\\])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![\w*])")


def clean(text: str) -> str:
    """NFKC, then control characters removed; newlines and tabs are kept."""
    text = unicodedata.normalize("NFKC", text)
    return _CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def hyphenated_words(text: str) -> set[str]:
    """Lower-cased words the text spells with a hyphen inside a line ("well-known")."""
    return {w.lower() for w in _HYPHENATED.findall(text)}


def dehyphenate(text: str, keep: set[str] | frozenset[str] = frozenset()) -> str:
    """Join words split by a hyphen at a line end; ``keep`` lists hyphenated words to keep as such."""

    def join(m: re.Match) -> str:
        first, rest = m.group(1), m.group(2)
        if f"{first}-{rest}".lower() in keep:
            return f"{first}-{rest}"
        return first + rest

    return _LINE_END_HYPHEN.sub(join, text)


def strip_emphasis(text: str) -> str:
    """Markdown bold/italic markers removed, the words kept."""
    text = _BOLD.sub(r"\2", text)
    return _ITALIC.sub(r"\1", text)


def garbage_reason(text: str) -> str | None:
    """Why ``text`` looks like extraction garbage rather than language, or None when it reads as text.

    A long text is judged on four 10,000-character slices spread over it (a 20 MB log must not
    cost seconds here); the counting is done by regular expressions, not a Python loop.
    """
    if len(text) > 40_000:
        step = len(text) // 4
        text = "".join(text[i * step : i * step + 10_000] for i in range(4))
    compact = _SPACE.sub("", text)
    n = len(compact)
    if n < 40:  # too little to judge; the "no text" checks handle near-empty documents
        return None
    controls = len(_JUNK.findall(compact))
    if controls / n > 0.1:
        return f"text looks garbled ({controls * 100 // n}% control, private-use or invalid characters)"
    wordish = len(_WORDISH.findall(compact))
    if wordish / n < 0.5:
        return f"text looks garbled (only {wordish * 100 // n}% letters or digits; a broken font encoding?)"
    glyph, count = Counter(compact).most_common(1)[0]
    if n >= 200 and count / n > 0.3:
        return f"text looks garbled (one glyph, {glyph!r}, is {count * 100 // n}% of it)"
    return None
