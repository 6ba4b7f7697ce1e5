"""The one error taxonomy: typed non-retryable failures that Temporal must not retry."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

__all__ = [
    "NON_RETRYABLE_TYPES",
    "BadDocument",
    "BlockedSource",
    "SchemaViolation",
    "InvalidInput",
    "non_retryable",
]

# Deterministic failures: retrying gives the same answer, so every retry policy lists them.
BadDocument = "BadDocument"  # malformed, encrypted, oversized or unsupported document
BlockedSource = "BlockedSource"  # a URL or path the run may not read
SchemaViolation = "SchemaViolation"  # model output that stays invalid after repair
InvalidInput = "InvalidInput"  # a request that can never succeed (bad corpus dir, ...)

NON_RETRYABLE_TYPES: tuple[str, ...] = (BadDocument, BlockedSource, SchemaViolation, InvalidInput)


def non_retryable(kind: str, message: str) -> ApplicationError:
    """An ApplicationError Temporal fails at once, with a reason the user can read."""
    if kind not in NON_RETRYABLE_TYPES:
        raise ValueError(f"unknown non-retryable type {kind!r}")
    return ApplicationError(message, type=kind, non_retryable=True)
