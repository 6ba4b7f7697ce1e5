"""Custom search attributes the runs set, so the Web UI and `deepsci pending` can filter on them."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

STAGE = SearchAttributeKey.for_keyword("DeepsciStage")
OPEN_GATE = SearchAttributeKey.for_keyword("DeepsciOpenGate")
LAST_DECISION = SearchAttributeKey.for_keyword("DeepsciLastDecision")
# Model spend so far (USD) and model steps so far: `DeepsciCostUsd > 1` in the Web UI's filter.
COST_USD = SearchAttributeKey.for_float("DeepsciCostUsd")
LLM_CALLS = SearchAttributeKey.for_int("DeepsciLlmCalls")
# The run's OpenTelemetry trace id (32 hex), set by the client that starts it: find a run from a trace.
TRACE_ID = SearchAttributeKey.for_keyword("DeepsciTraceId")

KEYS = (STAGE, OPEN_GATE, LAST_DECISION, COST_USD, LLM_CALLS, TRACE_ID)
# name -> type, as `temporal server start-dev --search-attribute NAME=TYPE` takes them
ALL = {STAGE.name: "Keyword", OPEN_GATE.name: "Keyword", LAST_DECISION.name: "Keyword",
       COST_USD.name: "Double", LLM_CALLS.name: "Int", TRACE_ID.name: "Keyword"}
