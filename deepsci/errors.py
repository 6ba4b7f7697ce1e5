"""The one error taxonomy: every ``ApplicationError.type`` the code raises, and which Temporal retries.

The values are the type strings saved in workflow histories: never change one, only add.
``http_error`` also raises ``HTTP<status>`` types (e.g. ``HTTP404``), retryable by status.

    ApplicationError(type=ErrorType.…)
    ├── non-retryable: deterministic, every retry policy lists them (NON_RETRYABLE_TYPES)
    │   ├── BadDocument, BlockedSource, InvalidInput        source and request (fetch, parse, search)
    │   ├── SchemaViolation                                 model output still invalid after repair
    │   ├── LlmAuthError, LlmConfigError, LlmContextTooLong fixed only by settings or the request
    │   └── LlmQuotaExhausted   the workflow CATCHES it: it parks the run on a timer, then retries
    ├── raised with non_retryable=True at the raise site: SlackError, HTTP400/401/403/404/413/422
    └── retryable: Temporal backs off (or waits next_retry_delay from a Retry-After)
        ├── LlmRateLimited, LlmUnavailable, LlmGarbledReply                   model provider
        ├── FetchError, FetchTimeout                                          safe fetcher
        ├── RateLimited, SearchTimeout, SearchUnavailable, SearchBadResponse  search providers
        ├── SlackUnavailable, SlackGateMessagePending                         Slack poster
        ├── ParserUnavailable                                                 parser child
        └── HTTP429, HTTP5xx

The workflows catch every activity failure of ``fetch_parse`` (the source is recorded as failed
with its reason), of ``notify`` (logged), and ``LlmQuotaExhausted`` of model steps (parked).
"""

from __future__ import annotations

from enum import StrEnum

from temporalio.exceptions import ApplicationError

__all__ = [
    "ErrorType",
    "NON_RETRYABLE_TYPES",
    "non_retryable",
    "http_error",
    "parse_retry_after",
]


class ErrorType(StrEnum):
    # Deterministic failures: retrying gives the same answer, so every retry policy lists them.
    BAD_DOCUMENT = "BadDocument"  # malformed, encrypted, oversized or unsupported document
    BLOCKED_SOURCE = "BlockedSource"  # a URL or path the run may not read
    SCHEMA_VIOLATION = "SchemaViolation"  # model output that stays invalid after repair
    INVALID_INPUT = "InvalidInput"  # a request that can never succeed (bad corpus dir, ...)
    # Model provider (deepsci/llm/provider.py): fixed only by changing settings or the request.
    LLM_AUTH = "LlmAuthError"  # 401/403: the key is wrong or may not use the model
    LLM_CONFIG = "LlmConfigError"  # 400/404/422: unknown model, bad base URL, rejected request
    LLM_CONTEXT_TOO_LONG = "LlmContextTooLong"  # the prompt does not fit the model's context window
    # Not retried by Temporal: the workflow catches this type and parks the run on a timer instead.
    LLM_QUOTA_EXHAUSTED = "LlmQuotaExhausted"
    # Retryable model failures: a rate limit, a provider or network fault, a reply without JSON.
    LLM_RATE_LIMITED = "LlmRateLimited"
    LLM_UNAVAILABLE = "LlmUnavailable"
    LLM_GARBLED_REPLY = "LlmGarbledReply"
    # Retryable fetch and search failures (deepsci/fetcher.py, deepsci/search_providers.py).
    FETCH_ERROR = "FetchError"
    FETCH_TIMEOUT = "FetchTimeout"
    RATE_LIMITED = "RateLimited"  # our own per-provider rate limit, waits next_retry_delay
    SEARCH_TIMEOUT = "SearchTimeout"
    SEARCH_UNAVAILABLE = "SearchUnavailable"
    SEARCH_BAD_RESPONSE = "SearchBadResponse"
    # Slack (deepsci/slack/poster.py): SlackError is raised non-retryable (a bad token or channel).
    SLACK_ERROR = "SlackError"
    SLACK_UNAVAILABLE = "SlackUnavailable"
    SLACK_GATE_MESSAGE_PENDING = "SlackGateMessagePending"  # "decided" waits for the "opened" post
    # The parser child could not load its parser (deepsci/sandbox.py): the worker's fault, retried.
    PARSER_UNAVAILABLE = "ParserUnavailable"


# Plain strings: they go into every retry policy (and so into history) as they always did.
NON_RETRYABLE_TYPES: tuple[str, ...] = tuple(str(t) for t in (
    ErrorType.BAD_DOCUMENT, ErrorType.BLOCKED_SOURCE, ErrorType.SCHEMA_VIOLATION, ErrorType.INVALID_INPUT,
    ErrorType.LLM_AUTH, ErrorType.LLM_CONFIG, ErrorType.LLM_CONTEXT_TOO_LONG, ErrorType.LLM_QUOTA_EXHAUSTED,
))

def non_retryable(kind: str, message: str) -> ApplicationError:
    """An ApplicationError Temporal fails at once, with a reason the user can read."""
    if kind not in NON_RETRYABLE_TYPES:
        raise ValueError(f"unknown non-retryable type {kind!r}")
    return ApplicationError(message, type=str(kind), non_retryable=True)


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
