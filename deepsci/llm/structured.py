"""Structured outputs both ways: a pydantic model as a strict JSON schema, a model reply back into the model."""

from __future__ import annotations

import copy
import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

__all__ = ["strict_schema", "parse_reply", "ReplyError", "clean_reply"]

T = TypeVar("T", bound=BaseModel)

# Keys whose values are schemas (or maps/lists of schemas): where the walk must go.
_SUB_SCHEMA = ("items", "additionalItems", "not", "contains")
_SUB_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_SUB_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")


def _strict(node: Any, string_limits: bool) -> None:
    if not isinstance(node, dict):
        return
    # Strict mode rejects "default"; the model fills it anyway because every property is required.
    node.pop("default", None)
    if not string_limits:
        node.pop("maxLength", None)
        node.pop("minLength", None)
    if node.get("type") == "object" or "properties" in node:
        props = node.get("properties", {})
        node["additionalProperties"] = False
        node["required"] = list(props)
    for key in _SUB_SCHEMA:
        _strict(node.get(key), string_limits)
    for key in _SUB_SCHEMA_LISTS:
        for sub in node.get(key) or []:
            _strict(sub, string_limits)
    for key in _SUB_SCHEMA_MAPS:
        for sub in (node.get(key) or {}).values():
            _strict(sub, string_limits)


def strict_schema(model: type[BaseModel], string_limits: bool = True) -> dict:
    """The JSON schema OpenAI's strict structured outputs accept: every object closed
    (additionalProperties false) with all its properties required, no defaults.

    ``maxItems`` always stays (strict mode accepts it; it stops a weak model filling a list until
    max_tokens). ``string_limits=False`` drops ``maxLength``/``minLength``, which grammar-based
    servers (llama.cpp, vLLM) enforce but OpenAI's strict mode does not list as supported; the
    reply is still validated against them (and repaired) on our side."""
    schema = copy.deepcopy(model.model_json_schema())
    _strict(schema, string_limits)
    return schema


class ReplyError(ValueError):
    """A reply that is not an instance of the schema; the message is what the repair prompt says.

    ``garbled``: no parseable JSON at all (cut off, truncated by a proxy): a glitch a second ask
    usually cures, unlike valid JSON of the wrong shape, which is the model's answer."""

    def __init__(self, message: str, garbled: bool = False):
        super().__init__(message)
        self.garbled = garbled


_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.S | re.I)
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.S)


def clean_reply(content: str) -> str:
    """Drop reasoning tags and markdown fences that reasoning and chat models wrap JSON in."""
    text = _THINK_BLOCK.sub("", content)
    lower = text.lower()
    if "</think>" in lower:  # chat templates that open <think> in the prompt leave only its end
        text = text[lower.rindex("</think>") + len("</think>"):]
    elif lower.lstrip().startswith("<think>"):  # cut off mid-thought: keep what follows the reasoning
        brace = text.find("{")
        text = text[brace:] if brace >= 0 else ""
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    text = text.strip()
    if text and not text.startswith(("{", "[")):  # prose around the object
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:
            text = text[start:end + 1]
    return text


def parse_reply(content: str, schema: type[T]) -> T:
    """Parse and validate a reply; raises ReplyError with a message a model can act on."""
    text = clean_reply(content)
    if not text:
        raise ReplyError("the reply contained no JSON object", garbled=True)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplyError(f"the reply is not valid JSON: {exc}", garbled=True) from None
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ReplyError(f"the reply does not match the {schema.__name__} schema: {exc}") from None
