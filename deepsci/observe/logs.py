"""Structured log lines for worker processes: key=value (default) or JSON, each carrying the run
id, activity, attempt and trace id of the code that logged, so a line leads to its run and trace."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from deepsci.observe.tracing import current_trace_id

__all__ = ["StructuredFormatter", "context_fields", "configure_logging"]


def context_fields(record: logging.LogRecord | None = None) -> dict[str, Any]:
    """run_id, workflow, activity, attempt and trace_id of the current activity or workflow task."""
    out: dict[str, Any] = {}
    if activity.in_activity():
        info = activity.info()
        out.update(run_id=info.workflow_id, activity=info.activity_type, attempt=info.attempt)
    else:
        # temporalio's workflow.logger puts the workflow's identity on the record.
        wf = getattr(record, "temporal_workflow", None) if record is not None else None
        if isinstance(wf, dict):
            out.update(run_id=wf.get("workflow_id"), workflow=wf.get("workflow_type"), attempt=wf.get("attempt"))
    trace_id = current_trace_id()
    if trace_id:
        out["trace_id"] = trace_id
    return {k: v for k, v in out.items() if v is not None}


def _kv(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' ="\n')) else text


class StructuredFormatter(logging.Formatter):
    def __init__(self, fmt: str = "kv"):
        super().__init__()
        self.json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        # UTC with milliseconds, the same ISO form as `deepsci logs` and the CLI's timestamps.
        ts = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        fields: dict[str, Any] = {"ts": ts, "level": record.levelname,
                                  "logger": record.name, "msg": record.getMessage(), **context_fields(record)}
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        if self.json:
            return json.dumps(fields, default=str, ensure_ascii=False)
        return " ".join(f"{k}={_kv(v)}" for k, v in fields.items())


def configure_logging(fmt: str = "kv", level: int = logging.INFO) -> None:
    """The worker's root logger: one structured line per record on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(StructuredFormatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
