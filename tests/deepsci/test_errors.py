"""The error taxonomy: what Temporal retries, what fails fast, and how long it waits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from deepsci.errors import NON_RETRYABLE_TYPES, http_error, non_retryable, parse_retry_after
from deepsci.policies import POLICIES


def test_every_policy_lists_the_non_retryable_types_and_client_timeouts_fit():
    for name, opts in POLICIES.items():
        assert set(NON_RETRYABLE_TYPES) <= set(opts.retry.non_retryable_error_types), name
        assert opts.start_to_close >= timedelta(seconds=30), name


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_fail_fast_with_what_to_fix(status):
    err = http_error("openai", status, "model not found")
    assert err.non_retryable and err.type == f"HTTP{status}"
    if status == 401:
        assert "check the API key" in err.message


def test_rate_limits_and_server_errors_retry_after_what_the_provider_asked():
    err = http_error("searxng", 429, retry_after="7")
    assert not err.non_retryable and err.next_retry_delay == timedelta(seconds=7)
    assert http_error("arxiv", 503).next_retry_delay is None
    assert parse_retry_after("Wed, 21 Oct 2026 07:28:10 GMT", now_epoch_s=1792567680.0) == 10.0
    assert parse_retry_after("soon") is None


def test_unknown_non_retryable_type_is_a_programming_error():
    with pytest.raises(ValueError):
        non_retryable("Whatever", "x")
