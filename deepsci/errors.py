"""The one error taxonomy: typed non-retryable failures that Temporal must not retry."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

__all__ = [
    "NON_RETRYABLE_TYPES",
    "BadDocument",
    "BlockedSource",
    "SchemaViolation",
    "InvalidInput",
    "LlmAuthError",
    "LlmConfigError",
    "LlmContextTooLong",
    "LlmQuotaExhausted",
    "non_retryable",
    "http_error",
    "parse_retry_after",
]

# Deterministic failures: retrying gives the same answer, so every retry policy lists them.
BadDocument = "BadDocument"  # malformed, encrypted, oversized or unsupported document
BlockedSource = "BlockedSource"  # a URL or path the run may not read
SchemaViolation = "SchemaViolation"  # model output that stays invalid after repair
InvalidInput = "InvalidInput"  # a request that can never succeed (bad corpus dir, ...)
# Model provider (deepsci/llm/provider.py): fixed only by changing settings or the request.
LlmAuthError = "LlmAuthError"  # 401/403: the key is wrong or may not use the model
LlmConfigError = "LlmConfigError"  # 400/404/422: unknown model, bad base URL, rejected request
LlmContextTooLong = "LlmContextTooLong"  # the prompt does not fit the model's context window
# Not retried by Temporal: the workflow catches this type and parks the run on a timer instead.
LlmQuotaExhausted = "LlmQuotaExhausted"

NON_RETRYABLE_TYPES: tuple[str, ...] = (BadDocument, BlockedSource, SchemaViolation, InvalidInput,
                                        LlmAuthError, LlmConfigError, LlmContextTooLong, LlmQuotaExhausted)


def non_retryable(kind: str, message: str) -> ApplicationError:
    """An ApplicationError Temporal fails at once, with a reason the user can read."""
    if kind not in NON_RETRYABLE_TYPES:
        raise ValueError(f"unknown non-retryable type {kind!r}")
    return ApplicationError(message, type=kind, non_retryable=True)


# HTTP status codes that mean "this request will never work": fail fast, say what to fix.
_HTTP_NON_RETRYABLE = {400: "bad request", 401: "unauthorized (check the API key)",
                       403: "forbidden (check the key's permissions)", 404: "not found",
                       413: "request too large", 422: "unprocessable request"}


def parse_retry_after(value: str | None, now_epoch_s: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import time
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now_epoch_s is None else now_epoch_s))


def http_error(service: str, status: int, detail: str = "", retry_after: str | None = None) -> ApplicationError:
    """The one mapping from a provider's HTTP failure to a Temporal error.

    4xx that cannot succeed on retry are non-retryable with a message saying what to fix;
    429 and 5xx are retryable, and a ``Retry-After`` becomes ``next_retry_delay`` so Temporal
    waits as long as the provider asked instead of its own backoff.
    """
    from datetime import timedelta

    if status in _HTTP_NON_RETRYABLE:
        return ApplicationError(f"{service}: HTTP {status} {_HTTP_NON_RETRYABLE[status]}: {detail}".rstrip(": "),
                                type=f"HTTP{status}", non_retryable=True)
    delay = parse_retry_after(retry_after)
    return ApplicationError(
        f"{service}: HTTP {status}{' (rate limited)' if status == 429 else ''}: {detail}".rstrip(": "),
        type=f"HTTP{status}", non_retryable=False,
        next_retry_delay=timedelta(seconds=delay) if delay is not None else None,
    )
