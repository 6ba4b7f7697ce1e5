"""Worker log lines (deepsci/observe/logs.py): one structured line per record, ISO UTC timestamps
with milliseconds (the form `deepsci logs` prints), the activity's identity, no colour codes."""

from __future__ import annotations

import json
import logging
import re

from temporalio.testing import ActivityEnvironment

from deepsci.observe.logs import StructuredFormatter

ISO_MS_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("deepsci.test", logging.WARNING, __file__, 1, msg, (), None)


def test_a_key_value_line_has_an_iso_utc_timestamp_and_quotes_what_needs_it():
    line = StructuredFormatter("kv").format(_record("two words"))
    assert re.fullmatch(rf'ts={ISO_MS_UTC} level=WARNING logger=deepsci.test msg="two words"', line), line
    assert "\x1b[" not in line


def test_a_json_line_inside_an_activity_names_its_run_activity_and_attempt():
    env = ActivityEnvironment()
    line = env.run(lambda: StructuredFormatter("json").format(_record("fetched")))
    fields = json.loads(line)
    assert re.fullmatch(ISO_MS_UTC, fields["ts"])
    info = env.info
    assert (fields["run_id"], fields["activity"], fields["attempt"]) == (info.workflow_id, info.activity_type,
                                                                           info.attempt)
