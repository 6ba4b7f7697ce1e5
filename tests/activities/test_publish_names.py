"""Report files are named by the run id, safely whatever the id: a long id or one full of path
characters (started by another client than the CLI) still publishes, under the reports folder."""

from __future__ import annotations

import uuid

from activities.publishing import PublishActivities
from deepsci.contracts import MAX_RUN_ID_LEN, PublishInput, ResearchResult


def _publish(deps, wid: str):
    key = f"{wid}/aggregate"
    deps.store.put_artifact(key, "report", {"markdown": f"# Report of {wid}\n"})
    result = ResearchResult(workflow_id=wid, status="published", question="What is full jitter?", mode="offline")
    return PublishActivities(deps).publish(PublishInput(idempotency_key=f"{wid}/publish", workflow_id=wid,
                                                        report_key=key, result=result))


def test_long_and_hostile_ids_publish_under_safe_file_names(deps, settings):
    tag = uuid.uuid4().hex[:8]
    legal = f"research-{tag}-" + "a" * (MAX_RUN_ID_LEN - 18)  # as long as `deepsci run --id` allows
    hostile = f"../../{tag}/" + "é/" * 150  # 306 characters, slashes, dots and non-ASCII
    twin = f"../../{tag}/" + "é/" * 149 + "e/"
    paths = {}
    for wid in (legal, hostile, twin):
        got = _publish(deps, wid)
        for path in (got.path_markdown, got.path_json):
            assert path.startswith(str(settings.reports_path) + "/")
            name = path.rsplit("/", 1)[1]
            assert len(name.encode()) <= 120 and "/" not in name and not name.startswith(".")
        assert open(got.path_markdown, encoding="utf-8").read() == f"# Report of {wid}\n"
        paths[wid] = got.path_markdown
    assert len(set(paths.values())) == 3  # ids that sanitise alike still get their own files
    assert paths[legal].rsplit("/", 1)[1].startswith(legal[:80])  # still recognisable by its id
