"""Fixtures for the domain package's tests: the artifact store on the session's Postgres and a fake
OpenAI-compatible server on loopback."""

from __future__ import annotations

import pytest

from deepsci.store import ArtifactStore
from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture(scope="module")
def store(settings) -> ArtifactStore:
    s = ArtifactStore(settings.dsn)
    s.ensure_schema()
    return s


@pytest.fixture
def fake():
    with FakeOpenAI() as f:
        yield f
