"""Text helpers shared by parsing, search and the offline engine: sentence spans, tokens, BM25."""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = ["sentence_spans", "tokens", "content_terms", "BM25", "slugify", "normalize_ws"]

_STOP = frozenset(
    """a an and are as at be been but by can could do does did for from had has have how i if in
    into is it its may might more most must no not of on or our over should so such than that the
    their them then there these they this those through to too under up use used uses using very
    was we were what when where which while who whom why will with within without would you your
    about after against all also any because before between both during each few further he her
    here hers him his itself just me my myself nor off once only other out own same she some
    than until us via vs""".split()
)

_SENT_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-']*")


def normalize_ws(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


_TYPOGRAPHIC = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'", "\u00a0": " "})


def normalize_quote(text: str) -> str:
    """What "verbatim" means when checking a citation: same words, any whitespace, plain quote marks.

    NFKC too: stored text is NFKC (``deepsci.cleaning``), so a quote typed with a ligature ("ﬁle")
    still matches.
    """
    return normalize_ws(unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHIC))


def quote_in(quote: str, text: str) -> bool:
    return normalize_quote(quote) in normalize_quote(text)


def slugify(text: str, max_len: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "run"


_ABBREV = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|cf|approx|Dr|Mr|Ms|No|Fig|Sec)\.|\b[A-Z]\.)$")


def _blocks(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Paragraph-like blocks: blank lines split them; headings and list items start new ones."""
    blocks: list[tuple[int, int]] = []
    cur: list[int] | None = None
    pos = start
    for line in text[start:end].splitlines(keepends=True):
        ls, le = pos, pos + len(line.rstrip("\r\n"))
        pos += len(line)
        stripped = line.strip()
        if not stripped:
            cur = None
            continue
        starts_new = stripped.startswith("#") or re.match(r"([-*+]|\d+\.)\s", stripped)
        if cur is None or starts_new or text[cur[0]:cur[1]].lstrip().startswith("#"):
            cur = [ls, le]
            blocks.append(cur)  # type: ignore[arg-type]
        else:
            cur[1] = le
    return [(b[0], b[1]) for b in blocks]


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) offsets of sentences in ``text[start:end]``; each span is trimmed, never rewritten.

    Paragraphs (blank-line separated), headings and list items end a sentence, so a quote never
    runs across a heading.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for b_start, b_end in _blocks(text, start, end):
        chunk = text[b_start:b_end]
        cursor = 0
        for m in _SENT_END.finditer(chunk):
            if _ABBREV.search(chunk[cursor : m.start()]):
                continue
            spans.append((b_start + cursor, b_start + m.start()))
            cursor = m.end()
        spans.append((b_start + cursor, b_end))
    out = []
    for s, e in spans:
        piece = text[s:e]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if e - trail > s + lead:
            out.append((s + lead, e - trail))
    return out


def _stem(word: str) -> str:
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ied", "es", "ed", "ly", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            word = word[: -len(suffix)]
            return word + "y" if suffix in ("ies", "ied") else word
    return word


def tokens(text: str) -> list[str]:
    """Lower-cased, lightly stemmed word tokens, stop words kept."""
    return [_stem(w.lower().strip("-'")) for w in _WORD.findall(text)]


def content_terms(text: str) -> list[str]:
    """Tokens with stop words and one-letter words removed: what a question is about."""
    return [
        _stem(w.lower().strip("-'"))
        for w in _WORD.findall(text)
        if w.lower() not in _STOP and len(w) > 1
    ]


class BM25:
    """Okapi BM25 over a small in-memory collection (corpus catalog, evidence sentences)."""

    def __init__(self, docs: Sequence[Iterable[str]], k1: float = 1.4, b: float = 0.75):
        self._tfs = [Counter(d) for d in docs]
        self._lens = [sum(tf.values()) for tf in self._tfs]
        self._avg = (sum(self._lens) / len(self._lens)) if self._lens else 0.0
        df: Counter[str] = Counter()
        for tf in self._tfs:
            df.update(tf.keys())
        n = len(self._tfs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self.k1, self.b = k1, b

    def score(self, query: Iterable[str], i: int) -> float:
        tf, length = self._tfs[i], self._lens[i]
        out = 0.0
        for t in set(query):
            f = tf.get(t)
            if f:
                denom = f + self.k1 * (1 - self.b + self.b * length / (self._avg or 1))
                out += self.idf[t] * f * (self.k1 + 1) / denom
        return out

    def scores(self, query: Iterable[str]) -> list[float]:
        q = list(query)
        return [self.score(q, i) for i in range(len(self._tfs))]
