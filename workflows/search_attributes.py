"""Custom search attributes the runs set, so the Web UI and `deepsci pending` can filter on them."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

STAGE = SearchAttributeKey.for_keyword("DeepsciStage")
OPEN_GATE = SearchAttributeKey.for_keyword("DeepsciOpenGate")
LAST_DECISION = SearchAttributeKey.for_keyword("DeepsciLastDecision")

# name -> type, as `temporal server start-dev --search-attribute NAME=TYPE` takes them
ALL = {k.name: "Keyword" for k in (STAGE, OPEN_GATE, LAST_DECISION)}
