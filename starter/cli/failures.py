"""A failed run in one line: where it failed, the cause (the innermost error's type and message) and
the setting or command that fixes it; the trace only with `deepsci --verbose`."""

from __future__ import annotations

from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    TerminatedError,
    TimeoutError,
)

from deepsci.errors import ErrorType

__all__ = ["explain", "FIXES"]

# What a user changes for each cause; a type not listed gets the generic hint.
FIXES: dict[str, str] = {
    ErrorType.LLM_AUTH: "check OPENAI_API_KEY (and that the key may use DEEPSCI_LLM_MODEL)",
    ErrorType.LLM_CONFIG: "check OPENAI_BASE_URL and DEEPSCI_LLM_MODEL",
    ErrorType.LLM_CONTEXT_TOO_LONG: "use a model with a larger context, or fewer --max-sources",
    ErrorType.LLM_QUOTA_EXHAUSTED: "top up the provider's quota, or raise --quota-park / quota_max_parks",
    ErrorType.SCHEMA_VIOLATION: "try DEEPSCI_LLM_STRONG_MODEL (a model that follows JSON schemas)",
    ErrorType.INVALID_INPUT: "fix the request (e.g. --corpus must be a folder the worker can read)",
    ErrorType.BLOCKED_SOURCE: "allow the host with DEEPSCI_FETCH_ALLOW_HOSTS, or drop that source",
    ErrorType.SEARCH_UNAVAILABLE: "check the provider's URL setting (DEEPSCI_SEARXNG_URL, ...) or use --search local",
    ErrorType.SEARCH_TIMEOUT: "check the provider's URL setting or raise DEEPSCI_SEARCH_TIMEOUT_S",
    ErrorType.SLACK_ERROR: "check SLACK_BOT_TOKEN and DEEPSCI_SLACK_CHANNEL",
}
GENERIC = "see `deepsci logs ID` or the Web UI; `deepsci --verbose ...` prints the trace"


def _chain(exc: BaseException | None):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or getattr(exc, "cause", None)


def explain(exc: BaseException) -> str:
    """``failed in <activity>: <Type>: <message> -> fix: <hint>`` from a run's failure chain."""
    where, cause = "", None
    for e in _chain(exc):
        if isinstance(e, ActivityError):
            where = f" in {e.activity_type}"
        elif isinstance(e, ChildWorkflowError):
            where = where or f" in {e.workflow_type} {e.workflow_id}"
        elif isinstance(e, TerminatedError | CancelledError | TimeoutError | ApplicationError):
            cause = e
    if isinstance(cause, TerminatedError):
        return f"the run was terminated{where}: {cause.message or 'no reason given'}"
    if isinstance(cause, CancelledError):
        return f"the run was cancelled{where}"
    if isinstance(cause, TimeoutError):
        return f"the run timed out{where}: {cause.message} -> fix: {GENERIC}"
    if isinstance(cause, ApplicationError):
        kind = cause.type or "error"
        message = " ".join(str(cause.message).split())[:300]
        return f"the run failed{where}: {kind}: {message} -> fix: {FIXES.get(kind, GENERIC)}"
    message = " ".join(str(exc).split())[:300]
    return f"the run failed{where}: {message} -> fix: {GENERIC}"
