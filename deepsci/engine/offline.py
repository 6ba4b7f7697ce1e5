"""The offline extractive engine: deterministic planning, drafting by verbatim quotes, and critique.

It never writes a sentence of its own about the subject: every claim in a draft is a sentence
copied from an evidence chunk, with the chunk it came from. When no evidence sentence is about
the sub-question it says so instead of guessing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from deepsci.contracts import IssueKind
from deepsci.text import content_terms, normalize_ws, quote_in, sentence_spans, tokens

__all__ = ["MODE", "NO_ANSWER", "FACETS", "plan", "draft_section", "DraftSentence", "check_section"]

MODE = "offline"
NO_ANSWER = "The sources do not answer this."
SECTION_SENTENCES = 4  # quotes shown per section

_WH = re.compile(
    r"^(how|what|why|when|where|which|who|whom|whose|is|are|do|does|did|can|could|should|would|will)"
    r"(\s+(is|are|do|does|did|can|could|should|would|will|was|were|has|have|kind of|types? of))?\s+",
    re.I,
)
FACETS = (
    "Mechanisms and practices",
    "Failure modes and risks",
    "How it is tested or measured",
    "Trade-offs and costs",
    "Examples and numbers",
)


def _clean_question(text: str) -> str:
    text = normalize_ws(text)
    return text if text.endswith("?") else text.rstrip(".!") + "?"


def plan(question: str, max_sub_questions: int) -> list[str]:
    """Decompose a question: its own parts first (several questions, or clauses joined by ';'),
    then the main question, then facet questions on its topic, up to ``max_sub_questions``."""
    q = normalize_ws(question)
    parts = [p.strip(" ;") for p in re.split(r"(?<=\?)\s+|;\s+", q) if len(p.strip(" ;?")) > 3]
    subs: list[str] = []
    for p in [q, *parts] if len(parts) > 1 else [q]:
        cleaned = _clean_question(p)
        if cleaned not in subs:
            subs.append(cleaned)
    topic = _WH.sub("", parts[0] if parts else q).rstrip("?. ")
    for facet in FACETS:
        subs.append(f"{facet}: {topic}?")
    return subs[:max_sub_questions]


@dataclass(frozen=True)
class DraftSentence:
    point_id: str
    quote: str
    score: float


_ANAPHORA = re.compile(r"^(This|These|That|Those|It|Its|They|Such|Both|Each of these)\b")


_SHORT = 40  # a sentence under this many characters is quoted only together with the one before it


def _candidate_sentences(chunk_text: str) -> list[str]:
    """Quotable sentences of a chunk. A sentence that points back ("This combination ...") or is
    too short to stand alone ("By default this is set to 3 minutes.") is quoted together with the
    sentence before it, as one contiguous verbatim span."""
    spans = sentence_spans(chunk_text)
    out: list[str] = []
    last = -1  # index in ``spans`` of the sentence ``out[-1]`` ends with
    for i, (s, e) in enumerate(spans):
        sent = chunk_text[s:e]
        if sent.lstrip().startswith(("#", "|")) or not 10 <= len(sent) <= 450:
            continue
        if not re.search(r"[.!?:]['\")\]]*$", sent):  # headings and fragments end without a stop
            continue
        short = len(sent) < _SHORT
        if i > 0 and (short or _ANAPHORA.match(sent)):
            ps, _ = spans[i - 1]
            prev = chunk_text[ps:s]
            if not prev.lstrip().startswith(("#", "|")) and "\n\n" not in prev and e - ps <= 700:
                sent = chunk_text[ps:e]
                if short and last == i - 1 and out[-1] == chunk_text[ps:spans[i - 1][1]]:
                    out.pop()  # the sentence before reads on into this one: quote them as one
            elif short:
                continue
        elif short:
            continue
        out.append(sent)
        last = i
    return out


def draft_section(
    question: str,
    sub_question: str,
    evidence: list[tuple[str, str, float]],
    notes: list[str] = (),  # type: ignore[assignment]
    max_sentences: int = 4,
) -> list[DraftSentence]:
    """Pick diverse evidence sentences that answer ``sub_question``.

    ``evidence`` holds (point_id, chunk_text, retrieval_score). A sentence qualifies only if it
    contains enough of the sub-question's topic words; ranking weighs rare words higher (idf over
    the evidence), adds the chunk's retrieval score, and skips near-duplicates (MMR-style).
    """
    topic = set(content_terms(sub_question.split(":", 1)[-1]))
    focus = set(content_terms(sub_question)) | set(content_terms(question))
    extra = {t for n in notes for t in content_terms(n)}
    cands: list[tuple[str, str, float, set[str]]] = []
    for pid, text, score in evidence:
        for sent in _candidate_sentences(text):
            cands.append((pid, sent, score, set(tokens(sent))))
    if not cands or not topic:
        return []
    n = len(cands)
    df: dict[str, int] = {}
    for *_, toks in cands:
        for t in toks & (focus | extra):
            df[t] = df.get(t, 0) + 1
    idf = {t: math.log(1 + n / (1 + f)) for t, f in df.items()}
    need = 2 if len(topic) >= 3 else 1
    scored: list[tuple[float, int]] = []
    for i, (_, _sent, chunk_score, toks) in enumerate(cands):
        if len(toks & topic) < need:
            continue
        s = sum(idf.get(t, 0.0) for t in toks & focus) + 0.5 * sum(idf.get(t, 0.0) for t in toks & extra)
        s = s / math.sqrt(max(len(toks), 8)) * 4 + chunk_score
        scored.append((s, i))
    scored.sort(key=lambda x: (-x[0], x[1]))
    picked: list[DraftSentence] = []
    picked_toks: list[set[str]] = []
    for s, i in scored:
        pid, sent, _, toks = cands[i]
        if any(len(toks & p) / max(1, len(toks | p)) > 0.5 for p in picked_toks):
            continue
        picked.append(DraftSentence(pid, sent, round(s, 4)))
        picked_toks.append(toks)
        if len(picked) >= max_sentences:
            break
    return picked


def check_section(sentences: list[dict], chunk_texts: dict[str, str]) -> list[tuple[IssueKind, str]]:
    """Critique one drafted section: (kind, detail) for each problem found."""
    issues: list[tuple[IssueKind, str]] = []
    if not sentences:
        return [("uncovered", "no evidence sentence addresses this sub-question")]
    for s in sentences:
        text = chunk_texts.get(s["point_id"])
        if text is None or not quote_in(s["quote"], text):
            issues.append(("unsupported", f"quote not found in its evidence chunk: {s['quote'][:80]}"))
    if len(sentences) < 2:
        issues.append(("thin", "only one supporting sentence"))
    return issues
