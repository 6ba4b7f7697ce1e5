"""Activity families run in their own thread pools: slow fetches cannot starve another run."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest

from deepsci.contracts import ResearchRequest
from tests.fakes.web import HostileServer, SearxngFake
from tests.helpers import running, start_run
from workers.main import build_workers
from workers.pools import ActivityPools
from workflows.research import ResearchWorkflow

SLOW = 8  # the case: eight trickling URLs held every thread of the old single pool


def test_every_routed_activity_has_a_pool_and_each_role_has_slots_for_all_its_pools():
    pools = ActivityPools({"fetch": 16, "search": 4, "model": 8, "store": 4, "notify": 2})
    try:
        assert pools.pool_of("fetch_parse") is pools.executors["fetch"]
        assert pools.pool_of("draft") is pools.executors["model"]
        assert pools.pool_of("index") is pools.executors["store"]
        assert pools.pool_of("notify") is pools.executors["notify"]
        assert pools.pool_of("no_such_activity") is None
        assert pools.slots("cpu") == 16 + 4  # fetch_parse; index and retrieve
        assert pools.slots("io") == 4 + 4 + 2  # search; publish; notify
        assert pools.slots("llm") == 8
    finally:
        pools.shutdown()
    with pytest.raises(ValueError, match="notify"):
        ActivityPools({"fetch": 1, "search": 1, "model": 1, "store": 1})  # type: ignore[typeddict-item]


async def test_slow_fetches_in_flight_do_not_starve_another_run(env, deps):
    hostile, sx = HostileServer().start(), SearxngFake().start()
    # Each URL trickles its headers for 30 s, then hangs up: the fetch is retried, so run A stays
    # in `investigating` for minutes while SLOW fetch threads are held.
    sx.results = [{"url": f"{hostile.url}/trickle-headers?s=30&n={i}", "title": f"slow {i}", "content": ""}
                  for i in range(SLOW)]
    settings = deps.settings.model_copy(update={
        "searxng_url": sx.url, "fetch_allow_hosts": [f"127.0.0.1:{hostile.port}"],
        "search_rate_per_s": {"searxng": 1000.0}, "fetch_timeout_s": 100.0,
    })
    custom = dataclasses.replace(deps, settings=settings)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    try:
        async with running(build_workers(env.client, custom, prefix)):
            slow_run = await start_run(env.client, prefix, ResearchRequest(
                question="What do trickling servers do to fetchers?", search=["searxng"], auto_approve=True,
                max_sub_questions=1, max_sources_per_sub_question=SLOW))
            try:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 120
                while len([r for r in hostile.requests if "trickle" in r[1]]) < SLOW:
                    assert loop.time() < deadline, f"only {len(hostile.requests)} slow fetches started"
                    await asyncio.sleep(0.2)

                other = await start_run(env.client, prefix, ResearchRequest(
                    question="How do retries with jitter avoid synchronized load?", auto_approve=True,
                    max_sub_questions=2))
                result = await asyncio.wait_for(other.result(), 300)
                assert result.status == "published", result.message

                # The other run finished while every slow fetch was still held.
                p = await slow_run.query(ResearchWorkflow.progress)
                assert p.stage == "investigating", p.stage
            finally:
                await slow_run.terminate("test over")
                hostile.stop()  # hang up on the held fetches so the worker drains at once
    finally:
        sx.stop()
