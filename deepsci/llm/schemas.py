"""What each model step must answer: pydantic models sent as strict JSON schemas (structured outputs).

Strict mode wants every property required and no extra properties, so these models have no
defaults and forbid extras; the client turns them into the `response_format` schema.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PlanOut", "DraftClaim", "DraftOut", "CritiqueFinding", "CritiqueOut", "SummaryPoint",
           "AggregateOut", "SCHEMAS"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanOut(_Out):
    sub_questions: list[str] = Field(description="Self-contained sub-questions, most important first.")


class DraftClaim(_Out):
    text: str = Field(description="One sentence answering the sub-question, in your words.")
    evidence_id: str = Field(description="The id of the evidence block that supports it, e.g. E2.")
    quote: str = Field(description="A verbatim passage copied from that evidence block.")


class DraftOut(_Out):
    claims: list[DraftClaim]


class CritiqueFinding(_Out):
    section_id: str = Field(description="The section the problem is in, e.g. S1.")
    problem: str


class CritiqueOut(_Out):
    findings: list[CritiqueFinding]


class SummaryPoint(_Out):
    text: str
    citations: list[int] = Field(description="Numbers of the citations that support this point.")


class AggregateOut(_Out):
    summary: list[SummaryPoint]


# Schema name (as sent in response_format.json_schema.name) -> model.
SCHEMAS: dict[str, type[BaseModel]] = {
    m.__name__: m for m in (PlanOut, DraftOut, CritiqueOut, AggregateOut)
}
