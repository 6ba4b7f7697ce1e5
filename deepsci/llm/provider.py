"""The openai client as Temporal wants it, and the one mapping from its errors to typed ApplicationErrors.

Shared by the chat client (deepsci/llm/client.py) and the embedder (deepsci/embedding.py), so a
wrong key or an exhausted quota reads the same whichever call met it first.
"""

from __future__ import annotations

import re
from datetime import timedelta

import openai
from temporalio.exceptions import ApplicationError

from deepsci.errors import ErrorType, parse_retry_after
from deepsci.settings import Settings

__all__ = ["make_openai_client", "provider_error"]

# Retryable types (Temporal backs off, or waits next_retry_delay when the provider said how long).
LlmRateLimited = ErrorType.LLM_RATE_LIMITED
LlmUnavailable = ErrorType.LLM_UNAVAILABLE

# What servers say when the prompt does not fit, as quoted in public issue reports and logs (found
# with a code/issue search; the servers' own sources were not at hand):
# - OpenAI: code "context_length_exceeded", "This model's maximum context length is 4097 tokens, however
#   you requested 4231 tokens ..." (hwchase17/chat-your-data#10).
# - vLLM: "This model's maximum context length is 4096 tokens and your request has 2778 input tokens"
#   (400 BadRequestError), and from the V1 engine "The decoder prompt (length 88049) is longer than the
#   maximum model length of 32768." (quoted in vLLM users' logs and issue reports).
# - llama.cpp server: HTTP 400 {"error": {"code": 400, "message": "request (4476 tokens) exceeds the
#   available context size (4096 tokens)", "type": "exceed_context_size_error", "n_prompt_tokens": 4476,
#   "n_ctx": 4096}}; older builds: "the request exceeds the available context size, try increasing it".
# - Ollama: "the input length exceeds the context length" (reported with 400, 413 and 500 statuses).
# Others in the same family: "prompt is too long" (Anthropic-style gateways), "reduce the length of
# the messages" (Groq), "context window".
_CONTEXT_RE = re.compile(r"context[ _-]length|context window|maximum context|too many tokens|"
                         r"prompt is too long|reduce the length|exceeds? the available context size|"
                         r"longer than the maximum model length|input length exceeds the context length", re.I)
_CONTEXT_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})


def make_openai_client(settings: Settings) -> openai.OpenAI:
    """max_retries=0: Temporal owns retries (no double retries); the timeout stays under the
    llm policy's start-to-close and heartbeat timeouts."""
    if not settings.openai_base_url:
        raise ValueError("openai_base_url is not set (OPENAI_BASE_URL)")
    return openai.OpenAI(base_url=settings.openai_base_url, api_key=settings.openai_api_key or "unused",
                         max_retries=0, timeout=settings.llm_timeout_s)


def _retry_delay(exc: openai.APIStatusError) -> timedelta | None:
    headers = exc.response.headers
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return timedelta(milliseconds=max(0.0, float(ms)))
        except ValueError:
            pass
    s = parse_retry_after(headers.get("retry-after"))
    return timedelta(seconds=s) if s is not None else None


def _detail(exc: openai.APIError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    msg = body.get("message") or exc.message
    return str(msg)[:500]


def provider_error(exc: Exception, *, base_url: str | None, model: str) -> ApplicationError:
    """Map an openai exception to an ApplicationError whose message says what to fix.

    Anything not recognised is returned as a retryable LlmUnavailable: retrying an unknown
    failure a bounded number of times is safer than failing a run on it.
    """
    where = f"model {model!r} at {base_url}"
    if isinstance(exc, openai.APITimeoutError):
        return ApplicationError(f"{where}: no answer within the client timeout (llm_timeout_s); will retry",
                                type=LlmUnavailable)
    if isinstance(exc, openai.APIConnectionError):
        return ApplicationError(f"{where}: cannot connect ({exc.__cause__ or exc}); is OPENAI_BASE_URL right "
                                "and the server up? Will retry", type=LlmUnavailable)
    if not isinstance(exc, openai.APIStatusError):
        return ApplicationError(f"{where}: {type(exc).__name__}: {exc}", type=LlmUnavailable)

    status, detail = exc.status_code, _detail(exc)
    code, kind = str(exc.code or ""), str(exc.type or "")
    if status == 401:
        return ApplicationError(
            f"{where}: HTTP 401 unauthorized: {detail}. Check OPENAI_API_KEY (or DEEPSCI_OPENAI_API_KEY) "
            f"is a valid key for {base_url}", type=ErrorType.LLM_AUTH, non_retryable=True)
    if status == 403:
        return ApplicationError(
            f"{where}: HTTP 403 forbidden: {detail}. The key in OPENAI_API_KEY may not use this model "
            "or project; check its permissions", type=ErrorType.LLM_AUTH, non_retryable=True)
    if status == 404:
        return ApplicationError(
            f"{where}: HTTP 404 not found: {detail}. Check the model name (DEEPSCI_LLM_MODEL and the "
            "cheap/strong/fallback/embedding models) and that OPENAI_BASE_URL ends in /v1 or the "
            "provider's equivalent", type=ErrorType.LLM_CONFIG, non_retryable=True)
    if status == 429 and "insufficient_quota" in (code, kind):
        return ApplicationError(
            f"{where}: HTTP 429 quota exhausted: {detail}. Add credit or raise the provider's limit; "
            "a model step parks the run and tries again later (embedding calls fail their step)",
            type=ErrorType.LLM_QUOTA_EXHAUSTED, non_retryable=True)
    if status == 429:
        return ApplicationError(f"{where}: HTTP 429 rate limited: {detail}", type=LlmRateLimited,
                                next_retry_delay=_retry_delay(exc))
    if (status == 413 or code in _CONTEXT_CODES or kind in _CONTEXT_CODES
            or (status in (400, 422, 500) and _CONTEXT_RE.search(detail))):
        return ApplicationError(
            f"{where}: the prompt is longer than the model's context: {detail}. Use a lower "
            "evidence_per_sub_question, a smaller chunk_chars (DEEPSCI_CHUNK_CHARS), or a "
            "longer-context model", type=ErrorType.LLM_CONTEXT_TOO_LONG, non_retryable=True)
    if status in (400, 422):
        return ApplicationError(
            f"{where}: HTTP {status} request rejected: {detail}. Check the model supports structured "
            "outputs (response_format json_schema) and the llm_* settings", type=ErrorType.LLM_CONFIG,
            non_retryable=True)
    # 5xx, 408, 409 and anything else: the provider's trouble, not ours.
    return ApplicationError(f"{where}: HTTP {status}: {detail}; will retry", type=LlmUnavailable,
                            next_retry_delay=_retry_delay(exc))
