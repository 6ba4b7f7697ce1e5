"""Task queues by resource: one per role, named ``<prefix>-<role>``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["Queues", "Role", "ROLES", "ActivityRole", "Pool"]

# The queue roles: workflow tasks, then one per resource activities need.
Role = Literal["workflows", "llm", "io", "cpu"]
ActivityRole = Literal["llm", "io", "cpu"]
ROLES: tuple[Role, ...] = get_args(Role)
# Thread pools inside one worker, one per activity family (workers/pools.py): fetch+parse, search,
# model calls, stores and indexing, notifications.
Pool = Literal["fetch", "search", "model", "store", "notify"]


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

    def of(self, role: Role) -> str:
        """The queue of ``role`` (``"llm"`` -> ``<prefix>-llm``)."""
        if role not in ROLES:
            raise ValueError(f"unknown queue role {role!r} (one of {', '.join(ROLES)})")
        return f"{self.prefix}-{role}"

    @classmethod
    def of_workflow_queue(cls, task_queue: str) -> Queues:
        """The queues of a run, derived from the queue its workflow task came from."""
        return cls(task_queue.removesuffix("-workflows"))
