"""Task queues by resource: one per role, named ``<prefix>-<role>``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Queues"]


@dataclass(frozen=True)
class Queues:
    prefix: str

    @property
    def workflows(self) -> str:
        return f"{self.prefix}-workflows"

    @property
    def llm(self) -> str:
        return f"{self.prefix}-llm"

    @property
    def io(self) -> str:
        return f"{self.prefix}-io"

    @property
    def cpu(self) -> str:
        return f"{self.prefix}-cpu"

    @classmethod
    def of_workflow_queue(cls, task_queue: str) -> Queues:
        """The queues of a run, derived from the queue its workflow task came from."""
        return cls(task_queue.removesuffix("-workflows"))
