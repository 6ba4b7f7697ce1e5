"""Plan activity: decompose the question into sub-questions."""

from __future__ import annotations

from temporalio import activity

from deepsci.contracts import Plan, PlanInput, SubQuestion
from deepsci.engine import offline

__all__ = ["PlanActivities"]


class PlanActivities:
    @activity.defn(name="plan")
    def plan(self, inp: PlanInput) -> Plan:
        subs = offline.plan(inp.question, inp.max_sub_questions)
        return Plan(
            sub_questions=[SubQuestion(id=f"sq{i + 1}", text=t) for i, t in enumerate(subs)],
            mode=offline.MODE,
        )
