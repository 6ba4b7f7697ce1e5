"""The error taxonomy: what Temporal retries, what fails fast, and how long it waits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activities.indexing import IndexActivities
from activities.notify import NotifyActivities
from activities.routes import route_of
from activities.sources import SourceActivities
from activities.writing import WritingActivities
from deepsci.errors import NON_RETRYABLE_TYPES, http_error, non_retryable, parse_retry_after
from deepsci.llm.client import MAX_CALLS_PER_STEP
from deepsci.policies import POLICIES
from deepsci.search_providers import WEB_PROVIDERS
from deepsci.settings import Settings
from deepsci.slack.poster import CLIENT_TIMEOUT_S as SLACK_CLIENT_TIMEOUT_S
from workers.heartbeats import HEARTBEAT_EVERY_S


def test_every_policy_lists_the_non_retryable_types():
    for name, opts in POLICIES.items():
        assert set(NON_RETRYABLE_TYPES) <= set(opts.retry.non_retryable_error_types), name


def test_client_timeouts_fit_inside_the_policy_of_the_activity_that_uses_them():
    """Temporal owns retries: a client call that outlives its activity's start-to-close (or, for a
    call between two heartbeats, the heartbeat timeout) is cut off and retried as a timeout instead
    of reporting its own error. Checked with the defaults a user gets (no env, no .env)."""
    s = Settings(_env_file=None)
    # The policy each activity runs under, from the route table the workflows call through.
    llm, search, fetch, embed, notify = (route_of(a).policy for a in (
        WritingActivities.draft, SourceActivities.search, SourceActivities.fetch_parse, IndexActivities.index,
        NotifyActivities.notify))

    # plan, draft, critique, aggregate: up to MAX_CALLS_PER_STEP model requests in one attempt
    assert MAX_CALLS_PER_STEP * seconds(s.llm_timeout_s) < llm.start_to_close
    # every attempt heartbeats from a background thread (workers/heartbeats.py), often enough for
    # every policy's heartbeat timeout, however long one blocking client call takes
    for name, opts in POLICIES.items():
        assert opts.heartbeat is None or seconds(2 * HEARTBEAT_EVERY_S) < opts.heartbeat, name
    # fetch_parse: the whole fetch's budget, then the parser child's wall-clock limit
    assert seconds(s.fetch_timeout_s + s.parse_timeout_s) < fetch.start_to_close
    assert seconds(s.fetch_connect_timeout_s) <= seconds(s.fetch_timeout_s)
    # search: every web provider in turn, each waiting for its rate limit then its request
    per_provider = s.search_rate_max_wait_s + s.search_timeout_s
    assert seconds(len(WEB_PROVIDERS) * per_provider) < search.start_to_close
    # notify: one Slack Web API call per notice
    assert seconds(SLACK_CLIENT_TIMEOUT_S) < notify.start_to_close


def seconds(s: float) -> timedelta:
    return timedelta(seconds=s)


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
