"""Publish activity: write the report (Markdown + JSON) to Postgres and the reports folder, once."""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING

from temporalio import activity

from deepsci.contracts import PublishInput, PublishResult
from deepsci.report import report_document

if TYPE_CHECKING:
    from activities.deps import Deps

__all__ = ["PublishActivities", "report_stem"]

_MAX_STEM = 100  # well under the 255-byte file name limit, with room for ".json"


def report_stem(workflow_id: str) -> str:
    """A file name stem for the run's report, safe whatever the id: the id itself when it is short
    and made of safe characters, else a truncated, sanitised id plus a hash of the whole id (so two
    ids never share a file)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", workflow_id).lstrip(".") or "_"
    if safe == workflow_id and len(safe) <= _MAX_STEM:
        return safe
    digest = hashlib.sha256(workflow_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{safe[:_MAX_STEM - 17]}-{digest}"


class PublishActivities:
    def __init__(self, deps: Deps):
        self.deps = deps

    @activity.defn(name="publish")
    def publish(self, inp: PublishInput) -> PublishResult:
        store, out_dir = self.deps.store, self.deps.settings.reports_path
        report = store.get_artifact(inp.report_key)
        result = inp.result.model_dump(mode="json")
        doc = report_document(result, report["markdown"])
        safe = report_stem(inp.workflow_id)
        md_path, json_path = out_dir / f"{safe}.md", out_dir / f"{safe}.json"

        def write() -> dict:
            out_dir.mkdir(parents=True, exist_ok=True)
            md_path.write_text(report["markdown"], encoding="utf-8")
            json_path.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
            store.put_report(inp.workflow_id, inp.result.question, inp.result.mode, report["markdown"], doc)
            return {"path_markdown": str(md_path), "path_json": str(json_path)}

        recorded, first = store.once(inp.idempotency_key, write)
        return PublishResult(**recorded, first_time=first)
