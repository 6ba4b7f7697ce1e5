"""What each model step must answer: pydantic models sent as strict JSON schemas (structured outputs).

Strict mode wants every property required and no extra properties, so these models have no
defaults and forbid extras; the client turns them into the `response_format` schema.

Every list has a maxItems and every string a maxLength: a weak model under grammar-constrained
decoding (llama.cpp, vLLM) otherwise fills a list until max_tokens and the reply is cut off.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PlanOut", "DraftClaim", "DraftOut", "CritiqueFinding", "CritiqueOut", "SummaryPoint",
           "AggregateOut", "SCHEMAS"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Bounds: generous for a good answer, small enough that a runaway list ends well inside max_tokens.
MAX_SUB_QUESTIONS = 12  # ResearchRequest.max_sub_questions' upper bound
MAX_CLAIMS = 8
MAX_FINDINGS = 12
MAX_POINTS = 8
MAX_CITED = 8
SubQuestionText = Annotated[str, Field(max_length=300)]


class PlanOut(_Out):
    sub_questions: list[SubQuestionText] = Field(max_length=MAX_SUB_QUESTIONS,
                                                 description="Self-contained sub-questions, most important first.")


class DraftClaim(_Out):
    text: str = Field(max_length=400, description="One sentence answering the sub-question, in your words.")
    evidence_id: str = Field(max_length=12, description="The id of the evidence block that supports it, e.g. E2.")
    quote: str = Field(max_length=600, description="A verbatim passage copied from that evidence block.")


class DraftOut(_Out):
    claims: list[DraftClaim] = Field(max_length=MAX_CLAIMS)


class CritiqueFinding(_Out):
    section_id: str = Field(max_length=12, description="The section the problem is in, e.g. S1.")
    problem: str = Field(max_length=400)


class CritiqueOut(_Out):
    findings: list[CritiqueFinding] = Field(max_length=MAX_FINDINGS)


class SummaryPoint(_Out):
    text: str = Field(max_length=500)
    citations: list[int] = Field(max_length=MAX_CITED, description="Numbers of the citations that support this point.")


class AggregateOut(_Out):
    summary: list[SummaryPoint] = Field(max_length=MAX_POINTS)


# Schema name (as sent in response_format.json_schema.name) -> model.
SCHEMAS: dict[str, type[BaseModel]] = {
    m.__name__: m for m in (PlanOut, DraftOut, CritiqueOut, AggregateOut)
}
