"""Step-by-step degradation: a model step that failed for good is noted and the run goes on without it.

A run has drafts, sources and evidence long before its last model call; one broken critique or
summary must not throw them away. Only failures that retrying cannot cure and that are about one
step's answer degrade (a schema violation after repair, a garbled reply or a timeout after every
retry, a prompt too long for the model): a wrong key, an unknown model or an exhausted quota would
fail every later step too, so they still fail the run (or park it) as before.

Workflow code. Runs started before PATCH_STEP_DEGRADATION fail as they always did (replay).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from deepsci.contracts import Degradation, DegradedStep
    from deepsci.errors import ErrorType

__all__ = ["Degrader", "PATCH_STEP_DEGRADATION", "degrade_reason"]

T = TypeVar("T")

PATCH_STEP_DEGRADATION = "step-degradation"

# Fixed only by an operator: every later model step would fail the same way.
_FATAL = frozenset({ErrorType.LLM_AUTH, ErrorType.LLM_CONFIG, ErrorType.LLM_QUOTA_EXHAUSTED})


def degrade_reason(err: ActivityError) -> str | None:
    """A one-line reason when this failed activity may be degraded around, else None."""
    cause = err.cause
    if isinstance(cause, CancelledError):
        return None
    if isinstance(cause, ApplicationError):
        if cause.type in _FATAL:
            return None
        return f"{cause.type or 'error'}: {cause.message}"[:300]
    if isinstance(cause, ActivityTimeout):
        return f"timed out ({cause.type.name if cause.type else 'timeout'}) after its retries"
    return str(cause or err)[:300]


@dataclass
class Degrader:
    enabled: bool = False  # PATCH_STEP_DEGRADATION, decided at the start of the run
    notes: list[Degradation] = field(default_factory=list)

    async def run(self, step: DegradedStep, item: str, fallback: str,
                  start: Callable[[], Awaitable[T]]) -> T | Degradation:
        """The step's result, or the Degradation noted when it failed for good and may be skipped."""
        try:
            return await start()
        except ActivityError as err:
            reason = degrade_reason(err) if self.enabled else None
            if reason is None:
                raise
            note = Degradation(step=step, sub_question_id=item, reason=reason, fallback=fallback)
            self.notes.append(note)
            workflow.logger.warning("step %s %s degraded (%s): %s", step, item, fallback, reason)
            return note
