"""Plan activity: decompose the question into sub-questions (the model when configured, else offline)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import activity

from deepsci.contracts import LlmUsage, Plan, PlanInput, SubQuestion
from deepsci.engine import offline
from deepsci.engine.model import ModelEngine

if TYPE_CHECKING:
    from activities.deps import Deps

__all__ = ["PlanActivities"]


class PlanActivities:
    def __init__(self, deps: Deps):
        self.deps = deps

    @activity.defn(name="plan")
    def plan(self, inp: PlanInput) -> Plan:
        if self.deps.llm is None:
            subs, usage, mode = offline.plan(inp.question, inp.max_sub_questions), LlmUsage(), offline.MODE
        else:
            engine = ModelEngine(self.deps.llm)
            subs, usage = engine.plan(inp.question, inp.max_sub_questions, inp.idempotency_key)
            mode = engine.mode
        return Plan(
            sub_questions=[SubQuestion(id=f"sq{i + 1}", text=t) for i, t in enumerate(subs)],
            mode=mode, usage=usage,
        )
