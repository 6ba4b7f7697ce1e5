"""A fake OpenAI-compatible server on loopback: the real ``openai`` client talks to it unmodified.

Routes: POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models; errors use OpenAI's
JSON body ``{"error": {"message", "type", "code", "param"}}``.

Chat replies are made by a responder per ``response_format.json_schema.name`` that reads the
prompts in the deepsci/llm/prompts.py format, so a pipeline run over it produces a real report:
drafts quote sentences verbatim from the evidence blocks.

Knobs: ``api_key`` (a wrong or missing Bearer key gets 401), ``faults`` (consumed in order by the
next chat requests: "429", "500", "slow", "malformed", "wrong_schema", "think",
"insufficient_quota", "401", "403", "400", "context_length", "refusal", "length", and the context
overflow of other servers: "context_llamacpp", "context_llamacpp_old", "context_vllm",
"context_vllm_v1", "context_ollama" (``CONTEXT_ERRORS``)),
``error_rate`` / ``error_kinds`` / ``seed`` (random faults when the queue is empty), ``retry_after``
(sent with 429), ``slow_s``,
``hallucinate`` (a draft claim whose quote is in no block), ``hostile_claim`` (a draft claim a hostile
document would plant, ``HOSTILE_CLAIM``, citing a real sentence of the first block), ``models`` (if
set, other model names get 404). Weak-model knobs, like a small model behind llama.cpp: ``runaway`` (lists grow until
max_tokens cuts the reply off, unless the schema bounds them with maxItems, which a grammar
enforces: then they are filled up to it), ``wrong_ids`` (evidence and section ids written ``1``,
``e2``, ``[E3]``, ``E 4``), ``broken`` (schema names whose replies always have the wrong shape,
e.g. {"CritiqueOut"}) and ``cut_off`` (schema names whose replies are always cut off at
max_tokens). ``requests`` logs every call; ``billed`` / ``billed_cost`` are what a provider would
charge: ceil(chars / 4) tokens in and out for every 200 reply the client received, malformed or
not. Errors are not billed, nor is a slow reply whose client had hung up before it was sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import select
import socket
import threading
import time
from dataclasses import dataclass

import numpy as np

from tests.fakes.web import FakeServer, _Handler

__all__ = ["FakeOpenAI", "Call", "parse_blocks", "FAULTS", "CONTEXT_ERRORS", "HALLUCINATED_QUOTE", "HOSTILE_CLAIM"]

# How servers other than OpenAI refuse a prompt longer than the context: (status, the "error" object).
CONTEXT_ERRORS: dict[str, tuple[int, dict]] = {
    "context_llamacpp": (400, {"code": 400, "message": "request (9100 tokens) exceeds the available context size "
                               "(8192 tokens)", "type": "exceed_context_size_error", "n_prompt_tokens": 9100,
                               "n_ctx": 8192}),
    "context_llamacpp_old": (400, {"code": 400, "message": "the request exceeds the available context size, "
                                   "try increasing it", "type": "invalid_request_error"}),
    "context_vllm": (400, {"object": "error", "message": "This model's maximum context length is 8192 tokens. "
                           "However, your request has 9100 input tokens. Please reduce the length of the input "
                           "messages.", "type": "BadRequestError", "param": None, "code": 400}),
    "context_vllm_v1": (400, {"object": "error", "message": "The decoder prompt (length 9100) is longer than the "
                              "maximum model length of 8192. Make sure that `max_model_len` is no smaller than "
                              "the number of text tokens.", "type": "BadRequestError", "param": None, "code": 400}),
    "context_ollama": (500, {"message": "the input length exceeds the context length", "type": "api_error",
                             "param": None, "code": None}),
}
FAULTS = ("429", "500", "slow", "malformed", "wrong_schema", "think", "insufficient_quota", "401",
          "context_length", "refusal", "length", "403", "400", *CONTEXT_ERRORS)
HALLUCINATED_QUOTE = "Quantum flux capacitors guarantee that every model provider has zero downtime."
HOSTILE_CLAIM = "Exponential backoff was withdrawn by the IETF as unsafe."

_BLOCK = re.compile(r"<<<UNTRUSTED-(?P<b>[0-9A-Za-z]+) (?P<head>[^\n]*)\n(?P<body>.*?)\nUNTRUSTED-(?P=b)>>>", re.S)
_ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_STOP = frozenset("""a an and are as at be been by can do does for from how in into is it its of on or
that the their there these this those to was were what when where which who why will with would
about after before between does each more most other over should than then they under up very
your you our we not no yes also such""".split())


def parse_blocks(text: str) -> list[dict]:
    """The fenced blocks of a prompt: [{"id", "body", **attrs}] in order."""
    out = []
    for m in _BLOCK.finditer(text):
        attrs = {}
        for k, v in _ATTR.findall(m.group("head")):
            attrs[k] = json.loads(v) if v.startswith('"') else v
        out.append({**attrs, "body": m.group("body")})
    return out


def _terms(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2 and w not in _STOP}


def _line(text: str, prefix: str) -> str:
    for line in text.splitlines():
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    return ""


def _tokens(chars: int) -> int:
    return math.ceil(chars / 4)


@dataclass
class Call:
    path: str
    model: str | None
    schema: str | None
    status: int


@dataclass
class Billing:
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0


# ---------------------------------------------------------------- responders (one per schema)


def plan_reply(user: str) -> dict:
    question = _line(user, "Question:")
    m = re.search(r"Return at most (\d+) sub-questions", user)
    n = int(m.group(1)) if m else 3
    topic = re.sub(r"^(what|how|why|when|which|who|does|do|is|are|can)\s+", "", question.rstrip("?"), flags=re.I)
    subs = [question, f"What mechanisms are involved in {topic}?", f"What are the limits of {topic}?"]
    return {"sub_questions": subs[:n]}


def draft_reply(user: str, hallucinate: bool, hostile_claim: bool = False) -> dict:
    want = _terms(_line(user, "Sub-question:"))
    scored: list[tuple[int, int, str, str]] = []
    for order, block in enumerate(parse_blocks(user)):
        for sentence in _SENTENCE_END.split(block["body"]):
            sentence = sentence.strip()
            overlap = len(want & _terms(sentence))
            if overlap and len(sentence) >= 20:
                scored.append((-overlap, order, block["id"], sentence))
    scored.sort()
    claims, seen = [], set()
    for _, _, block_id, sentence in scored:
        if sentence in seen:
            continue
        seen.add(sentence)
        words = sentence.split()
        claims.append({"text": "The source states that " + " ".join(words[:14]).rstrip(".,;:") + ".",
                       "evidence_id": block_id, "quote": sentence})
        if len(claims) == 3:
            break
    if hallucinate:
        blocks = parse_blocks(user)
        claims.append({"text": "Providers never go down.", "evidence_id": blocks[0]["id"] if blocks else "E1",
                       "quote": HALLUCINATED_QUOTE})
    real = [(b["id"], s.strip()) for b in parse_blocks(user) for s in _SENTENCE_END.split(b["body"])
            if len(s.split()) >= 6]
    if hostile_claim and real:  # the quote checks out; the claim is not what it says
        claims.insert(0, {"text": HOSTILE_CLAIM, "evidence_id": real[0][0], "quote": real[0][1]})
    return {"claims": claims}


def critique_reply(user: str) -> dict:
    findings = []
    for block in parse_blocks(user):
        dropped = int(block.get("dropped_citations") or 0)
        if block["body"].strip() == "(no claims)":
            findings.append({"section_id": block["id"], "problem": "The section does not answer its sub-question."})
        elif dropped > 0:
            findings.append({"section_id": block["id"],
                             "problem": f"{dropped} citation(s) did not check out; find support for them."})
    return {"findings": findings}


def aggregate_reply(user: str) -> dict:
    points = []
    for block in parse_blocks(user):
        nums = [int(n) for n in re.findall(r"^\[(\d+)\]", block["body"], re.M)]
        if nums:
            first = re.sub(r"^\[\d+\]\s*", "", block["body"].splitlines()[0])
            points.append({"text": f"{block.get('sub_question', '')}: {first}".strip(": "), "citations": nums})
    return {"summary": points}


WRONG_SHAPE = {"answer": "Here is what I found.", "confidence": "high"}


# ---------------------------------------------------------------- the server


class _OpenAIHandler(_Handler):
    def _dispatch(self, method: str) -> None:
        body = b""
        if method == "POST":
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
        from urllib.parse import urlsplit

        self.server.fake.handle(self, method, urlsplit(self.path), body)

    def client_gone(self) -> bool:
        """True when the client closed its end (it timed out): readable with nothing to read."""
        try:
            ready, _, _ = select.select([self.connection], [], [], 0)
            return bool(ready) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


class FakeOpenAI(FakeServer):
    def __init__(self, *, api_key: str | None = None, faults: list[str] | None = None,
                 error_rate: float = 0.0, error_kinds: list[str] | None = None, seed: int = 0,
                 retry_after: str | None = None, slow_s: float = 5.0, hallucinate: bool = False,
                 hostile_claim: bool = False,
                 models: list[str] | None = None, runaway: bool = False, wrong_ids: bool = False,
                 broken: set[str] | frozenset[str] = frozenset(), cut_off: set[str] | frozenset[str] = frozenset()):
        super().__init__()
        self.httpd.RequestHandlerClass = _OpenAIHandler
        self.api_key, self.faults = api_key, list(faults or [])
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS}")
        self.error_rate, self.error_kinds = error_rate, list(error_kinds or ["429", "500"])
        self.retry_after, self.slow_s, self.hallucinate, self.models = retry_after, slow_s, hallucinate, models
        self.hostile_claim = hostile_claim
        self.runaway, self.wrong_ids, self.broken, self.cut_off = runaway, wrong_ids, set(broken), set(cut_off)
        self.resent: list[int] = []  # chars of the assistant turn each repair request sent back
        self.requests: list[Call] = []  # type: ignore[assignment]  # replaces the base (method, path) log
        self.prompts: list[tuple[str | None, str]] = []  # (schema, user message) of every chat request
        self.billed: dict[str, Billing] = {}
        self.embedding_billed: dict[str, Billing] = {}
        self.embedding_inputs: list[int] = []  # inputs per embeddings request (batching)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    # ------------------------------------------------------------ billing

    def billed_cost(self, prices: dict[str, list[float]]) -> float:
        """What the chat calls cost at ``prices`` (USD per million tokens [in, out]), as the client counts."""
        total = 0.0
        for model, b in self.billed.items():
            p = prices.get(model)
            if p:
                total += b.tokens_in * p[0] / 1e6 + b.tokens_out * p[1] / 1e6
        return total

    def billed_totals(self) -> Billing:
        out = Billing()
        for b in self.billed.values():
            out.calls, out.tokens_in, out.tokens_out = (out.calls + b.calls, out.tokens_in + b.tokens_in,
                                                        out.tokens_out + b.tokens_out)
        return out

    def chat_calls(self, status: int | None = None) -> list[Call]:
        return [c for c in self.requests if c.path.endswith("/chat/completions")
                and (status is None or c.status == status)]

    # ------------------------------------------------------------ HTTP

    def _error(self, h, path, model, schema, status: int, message: str, type_: str, code: str | None,
               headers: dict[str, str] | None = None) -> None:
        with self._lock:
            self.requests.append(Call(path, model, schema, status))
        body = json.dumps({"error": {"message": message, "type": type_, "code": code, "param": None}}).encode()
        h.send(status, body, "application/json", headers)

    def handle(self, h, method, url, body) -> None:
        path = url.path
        if self.api_key is not None and h.headers.get("Authorization") != f"Bearer {self.api_key}":
            self._error(h, path, None, None, 401, "Incorrect API key provided.", "invalid_request_error",
                        "invalid_api_key")
            return
        if method == "GET" and path == "/v1/models":
            names = self.models or ["fake-cheap", "fake-strong", "fake-fallback", "fake-embed"]
            with self._lock:
                self.requests.append(Call(path, None, None, 200))
            h.send_json({"object": "list", "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "fake"} for n in names]})
            return
        try:
            req = json.loads(body or b"{}")
        except json.JSONDecodeError:
            self._error(h, path, None, None, 400, "We could not parse the JSON body of your request.",
                        "invalid_request_error", None)
            return
        model = req.get("model")
        if method == "POST" and path == "/v1/chat/completions":
            self._chat(h, path, req)
        elif method == "POST" and path == "/v1/embeddings":
            self._embeddings(h, path, req)
        else:
            self._error(h, path, model, None, 404, f"Unknown request URL: {method} {path}.",
                        "invalid_request_error", "unknown_url")

    def _next_fault(self) -> str | None:
        with self._lock:
            if self.faults:
                return self.faults.pop(0)
            if self.error_rate and self._rng.random() < self.error_rate:
                return self._rng.choice(self.error_kinds)
        return None

    def _chat(self, h, path: str, req: dict) -> None:
        model = req.get("model") or ""
        schema = ((req.get("response_format") or {}).get("json_schema") or {}).get("name")
        if self.models is not None and model not in self.models:
            self._error(h, path, model, schema, 404, f"The model `{model}` does not exist or you do not "
                        "have access to it.", "invalid_request_error", "model_not_found")
            return
        messages = req.get("messages") or []
        chars_in = sum(len(m.get("content") or "") for m in messages)
        fault = self._next_fault()
        if fault in ("429", "500", "insufficient_quota", "401", "context_length", "403", "400", *CONTEXT_ERRORS):
            self._fault_error(h, path, model, schema, fault, chars_in)
            return
        user = next((m.get("content") or "" for m in messages if m.get("role") == "user"), "")
        with self._lock:
            self.prompts.append((schema, user))
            self.resent += [len(m.get("content") or "") for m in messages if m.get("role") == "assistant"]
        try:
            obj = self._respond(schema, user)
        except KeyError:
            self._error(h, path, model, schema, 400, f"No responder for schema {schema!r}.",
                        "invalid_request_error", None)
            return
        obj = self._weaken(obj, req)
        content, finish, refusal = json.dumps(obj), "stop", None
        cap = 4 * int(req.get("max_tokens") or req.get("max_completion_tokens") or 4096)  # ~4 chars a token
        if len(content) > cap or schema in self.cut_off:
            content, finish = content[: min(cap, max(1, len(content) // 3))], "length"
        elif schema in self.broken:
            content = json.dumps(WRONG_SHAPE)
        if fault == "malformed":
            content = content[: max(1, len(content) // 2)]  # cut mid-object: not JSON
        elif fault == "wrong_schema":
            content = json.dumps(WRONG_SHAPE)
        elif fault == "think":
            content = f"<think>The user wants {schema}. Let me check the blocks.</think>\n```json\n{content}\n```"
        elif fault == "refusal":
            content, refusal = "", "I'm sorry, I cannot help with that."
        elif fault == "length":
            content, finish = content[: max(1, len(content) // 3)], "length"
        elif fault == "slow":
            time.sleep(self.slow_s)
            if h.client_gone():
                with self._lock:
                    self.requests.append(Call(path, model, schema, 499))  # nginx's "client closed request"
                return
        tin, tout = _tokens(chars_in), _tokens(len(content))
        with self._lock:
            self.requests.append(Call(path, model, schema, 200))
            b = self.billed.setdefault(model, Billing())
            b.calls, b.tokens_in, b.tokens_out = b.calls + 1, b.tokens_in + tin, b.tokens_out + tout
        h.send_json({
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": "fake",
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                         "message": {"role": "assistant", "content": content or None, "refusal": refusal}}],
            "usage": {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout},
        })

    def _weaken(self, obj: dict, req: dict) -> dict:
        """What a weak model makes of a good answer (the ``runaway`` and ``wrong_ids`` knobs)."""
        props = (((req.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}).get(
            "properties") or {}
        out = dict(obj)
        for key, items in obj.items():
            if not isinstance(items, list):
                continue
            items = [dict(x) if isinstance(x, dict) else x for x in items]
            if self.wrong_ids:
                for i, x in enumerate(items):
                    for id_key in ("evidence_id", "section_id"):
                        if isinstance(x, dict) and isinstance(x.get(id_key), str):
                            n = x[id_key].lstrip("ES")
                            x[id_key] = (n, f"{x[id_key][0].lower()}{n}", f"[{x[id_key]}]",
                                         f"{x[id_key][0]} {n}")[i % 4]
            if self.runaway and items:
                bound = props.get(key, {}).get("maxItems")
                # No bound: the list goes on until max_tokens cuts it (the cut happens in _chat).
                want = bound if bound is not None else 10_000
                items = [items[i % len(items)] for i in range(want)]
            out[key] = items
        return out

    def _respond(self, schema: str | None, user: str) -> dict:
        if schema == "PlanOut":
            return plan_reply(user)
        if schema == "DraftOut":
            return draft_reply(user, self.hallucinate, self.hostile_claim)
        if schema == "CritiqueOut":
            return critique_reply(user)
        if schema == "AggregateOut":
            return aggregate_reply(user)
        raise KeyError(schema)

    def _fault_error(self, h, path, model, schema, fault: str, chars_in: int) -> None:
        if fault in CONTEXT_ERRORS:
            status, error = CONTEXT_ERRORS[fault]
            with self._lock:
                self.requests.append(Call(path, model, schema, status))
            h.send(status, json.dumps({"error": error}).encode(), "application/json")
        elif fault == "429":
            headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
            self._error(h, path, model, schema, 429, f"Rate limit reached for {model}. Please try again later.",
                        "requests", "rate_limit_exceeded", headers)
        elif fault == "insufficient_quota":
            self._error(h, path, model, schema, 429, "You exceeded your current quota, please check your "
                        "plan and billing details.", "insufficient_quota", "insufficient_quota")
        elif fault == "500":
            self._error(h, path, model, schema, 500, "The server had an error while processing your request.",
                        "server_error", None)
        elif fault == "401":
            self._error(h, path, model, schema, 401, "Incorrect API key provided.", "invalid_request_error",
                        "invalid_api_key")
        elif fault == "403":
            self._error(h, path, model, schema, 403, "Project does not have access to this model.",
                        "invalid_request_error", "model_not_allowed")
        elif fault == "400":
            self._error(h, path, model, schema, 400, "Invalid schema for response_format 'PlanOut'.",
                        "invalid_request_error", "invalid_json_schema")
        else:  # context_length
            self._error(h, path, model, schema, 400, "This model's maximum context length is 8192 tokens. "
                        f"However, your messages resulted in {max(8193, _tokens(chars_in))} tokens.",
                        "invalid_request_error", "context_length_exceeded")

    def _embeddings(self, h, path: str, req: dict) -> None:
        model = req.get("model") or ""
        if self.models is not None and model not in self.models:
            self._error(h, path, model, None, 404, f"The model `{model}` does not exist.",
                        "invalid_request_error", "model_not_found")
            return
        fault = self._next_fault()
        if fault in ("429", "500", "insufficient_quota", "401", "context_length", "403", "400", *CONTEXT_ERRORS):
            self._fault_error(h, path, model, None, fault, 0)
            return
        inputs = req.get("input")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
        dim = int(req.get("dimensions") or 256)
        data = []
        for i, text in enumerate(inputs):
            vec = embed_text(str(text), dim)
            emb = (base64.b64encode(vec.astype("<f4").tobytes()).decode()
                   if req.get("encoding_format") == "base64" else vec.tolist())
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(_tokens(len(str(t))) for t in inputs)
        with self._lock:
            self.requests.append(Call(path, model, None, 200))
            self.embedding_inputs.append(len(inputs))
            b = self.embedding_billed.setdefault(model, Billing())
            b.calls, b.tokens_in = b.calls + 1, b.tokens_in + tokens
        h.send_json({"object": "list", "data": data, "model": model,
                     "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def embed_text(text: str, dim: int) -> np.ndarray:
    """Hashed bag of words, L2-normalised: texts sharing words get a high cosine, so retrieval works."""
    vec = np.zeros(dim, dtype=np.float64)
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word in _STOP:
            continue
        h = hashlib.sha256(word.encode()).digest()
        vec[int.from_bytes(h[:4], "little") % dim] += 1.0 if h[4] & 1 else -1.0
    norm = np.linalg.norm(vec)
    if norm == 0:
        vec[0], norm = 1.0, 1.0
    return (vec / norm).astype(np.float32)
