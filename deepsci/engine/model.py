"""The model engine: plan, draft, critique and summarise with an OpenAI-compatible chat model.

Citations are checked, not trusted: a drafted claim keeps its citation only if its quote appears
verbatim (up to whitespace) in the evidence chunk it names, and the claim is supported by that quote
(deepsci/claims.py); otherwise the claim is dropped and counted, and the critique step is told.
Nothing from the model reaches the report unchecked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from deepsci.claims import UNSUPPORTED, ClaimChecker
from deepsci.contracts import LlmUsage
from deepsci.llm import prompts
from deepsci.llm.schemas import AggregateOut, CritiqueOut, DraftOut, PlanOut
from deepsci.observe import metrics as m
from deepsci.observe import span
from deepsci.text import normalize_quote, normalize_ws

__all__ = ["ModelEngine", "DraftResult", "MIN_QUOTE_WORDS", "block_id"]

MIN_QUOTE_WORDS = 4  # a citation must quote a real passage, not "the" or "model"


@dataclass
class DraftResult:
    sentences: list[dict] = field(default_factory=list)  # point_id, quote, text
    dropped: list[dict] = field(default_factory=list)  # evidence_id, quote, text, reason
    usage: LlmUsage = field(default_factory=LlmUsage)

    @property
    def unsupported(self) -> int:
        """Claims dropped because their (verbatim) quote does not support them."""
        return sum(1 for d in self.dropped if d["reason"] == UNSUPPORTED)

    @property
    def quotes_failed(self) -> int:
        """Claims dropped because their quote or evidence id did not check out."""
        return len(self.dropped) - self.unsupported


_BLOCK_ID = re.compile(r"^[\[(\s]*([A-Za-z]?)\s*[-_#]?\s*(\d+)[\])\s.]*$")


def block_id(raw: str, prefix: str) -> str:
    """``E2`` from the variants weak models write for it: ``2``, ``"e2"``, ``[E2]``, ``E 2``, ``E-2``.
    Another letter (``S2`` for an evidence id) stays wrong: it names no block and the claim is dropped."""
    m = _BLOCK_ID.match(raw)
    if m and (not m.group(1) or m.group(1).upper() == prefix):
        return f"{prefix}{int(m.group(2))}"
    return raw.strip().upper()


def _norm(text: str) -> str:
    return normalize_quote(text)


def clean_quote(quote: str) -> str:
    """The quote as checked and stored: normalized, without wrapping quote marks or ellipses."""
    return _norm(quote).strip(" \"'.\u2026")


def check_quote(quote: str, chunk_text: str | None) -> str | None:
    """Why a cited quote fails, or None when it appears verbatim in its chunk."""
    if chunk_text is None:
        return "names no evidence block that was given"
    q = clean_quote(quote)
    if len(q.split()) < MIN_QUOTE_WORDS:
        return f"quote shorter than {MIN_QUOTE_WORDS} words"
    if q not in _norm(chunk_text):
        return "quote not found in the evidence chunk it names"
    return None


class ModelEngine:
    def __init__(self, llm, claims: ClaimChecker | None = None) -> None:  # llm: deepsci.llm.client.LlmClient
        """``claims`` judges each claim against its verified quote; without it only quotes are checked."""
        self.llm = llm
        self.claims = claims

    @property
    def mode(self) -> str:
        return f"model:{self.llm.model_for('draft', 1)}"

    def plan(self, question: str, max_sub_questions: int, key: str) -> tuple[list[str], LlmUsage]:
        system, user = prompts.plan_prompt(question, max_sub_questions)
        out, usage = self.llm.structured(step="plan", system=system, user=user, schema=PlanOut, cache_key=key)
        subs: list[str] = []
        for s in out.sub_questions:
            s = normalize_ws(s)
            if s and s not in subs:
                subs.append(s)
        return (subs or [normalize_ws(question)])[:max_sub_questions], usage

    def draft(self, question: str, sub_question: str, evidence: list[tuple[str, dict]], notes: list[str],
              key: str) -> DraftResult:
        """``evidence``: (point_id, chunk row) pairs in retrieval order; they become E1, E2, ..."""
        if not evidence:
            return DraftResult()
        blocks = {f"E{i}": (pid, c) for i, (pid, c) in enumerate(evidence, start=1)}
        system, user = prompts.draft_prompt(question, sub_question, [
            {"id": eid, "title": c["title"], "locator": c["locator"], "text": c["text"]}
            for eid, (_, c) in blocks.items()
        ], notes)
        out, usage = self.llm.structured(step="draft", system=system, user=user, schema=DraftOut, cache_key=key)
        res = DraftResult(usage=usage)
        with span("citation_check", **{"deepsci.claims": len(out.claims)}) as sp:
            self._check_claims(out, blocks, res)
            sp.set_attributes({"deepsci.citations.kept": len(res.sentences),
                               "deepsci.citations.dropped": res.quotes_failed,
                               "deepsci.claims.unsupported": res.unsupported})
        m.CITATIONS.add(len(res.sentences), {"outcome": "kept"})
        m.CITATIONS.add(res.quotes_failed, {"outcome": "dropped"})
        m.CITATIONS.add(res.unsupported, {"outcome": "unsupported"})
        return res

    def _check_claims(self, out: DraftOut, blocks: dict[str, tuple[str, dict]], res: DraftResult) -> None:
        """Keep a claim only if its quote is verbatim in the chunk it names and supports it (all the
        claims of one draft are judged with one embedding batch)."""
        verified: list[tuple[str, dict[str, str]]] = []
        for claim in out.claims:
            eid = block_id(claim.evidence_id, "E")
            pid, chunk = blocks.get(eid, (None, None))
            why = check_quote(claim.quote, chunk["text"] if chunk else None)
            if why or not claim.text.strip():
                res.dropped.append({"evidence_id": claim.evidence_id, "quote": claim.quote[:300],
                                    "text": claim.text[:300], "reason": why or "empty claim"})
                continue
            verified.append((claim.evidence_id, {"point_id": str(pid), "quote": clean_quote(claim.quote),
                                                 "text": normalize_ws(claim.text)}))
        verdicts = self.claims.check([(s["text"], s["quote"]) for _, s in verified]) if self.claims else None
        for i, (raw_id, s) in enumerate(verified):
            v = verdicts[i] if verdicts is not None else None
            if v is not None and not v.supported:
                res.dropped.append({"evidence_id": raw_id, "quote": s["quote"][:300], "text": s["text"][:300],
                                    "reason": v.reason, "score": v.score})
                continue
            res.sentences.append(s)

    def critique(self, question: str, sections: list[dict], reviewer_comment: str,
                 key: str) -> tuple[list[tuple[str, str]], LlmUsage]:
        """``sections``: dicts with sub_question_id, sub_question, claims, dropped. Returns
        (sub_question_id, problem) for each finding on a known section."""
        ids = {f"S{i}": s["sub_question_id"] for i, s in enumerate(sections, start=1)}
        system, user = prompts.critique_prompt(question, [
            {"id": sid, "sub_question": s["sub_question"], "claims": s["claims"], "dropped": s["dropped"]}
            for sid, s in zip(ids, sections, strict=True)
        ], reviewer_comment)
        out, usage = self.llm.structured(step="critique", system=system, user=user, schema=CritiqueOut,
                                         cache_key=key)
        found = []
        for f in out.findings:
            sq = ids.get(block_id(f.section_id, "S"))
            if sq and f.problem.strip():
                found.append((sq, normalize_ws(f.problem)[:500]))
        return found, usage

    def summary(self, question: str, sections: list[dict], known: set[int],
                key: str) -> tuple[list[tuple[str, list[int]]], int, LlmUsage]:
        """``sections``: dicts with id, sub_question, claims [(n, text)]. Returns the summary points
        that cite only known citation numbers, how many points were dropped, and the usage."""
        system, user = prompts.aggregate_prompt(question, sections)
        out, usage = self.llm.structured(step="aggregate", system=system, user=user, schema=AggregateOut,
                                         cache_key=key)
        points, dropped = [], 0
        for p in out.summary:
            cited = [n for n in dict.fromkeys(p.citations) if n in known]
            if not cited or not p.text.strip() or len(cited) != len(set(p.citations)):
                dropped += 1
                continue
            points.append((normalize_ws(p.text), cited))
        return points, dropped, usage
