"""A fake Slack on loopback: the Web API methods the bot and the notify activity call, and what Slack
itself sends to the bot (signed interaction and slash-command requests).

The Web API side speaks Slack's real protocol (``POST /api/<method>``, JSON or form body, bearer
token, ``{"ok": false, "error": ...}`` with HTTP 200, HTTP 429 + ``Retry-After`` when rate limited),
so ``slack_sdk.WebClient`` runs unmodified against it. It keeps the channel's messages (edited in
place by ``chat.update``), ephemeral messages, opened modals and ``response_url`` replies, and checks
the Block Kit limits Slack enforces (so a message Slack would refuse fails here too).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode

from deepsci.slack import blocks as bk
from tests.fakes.web import FakeServer

__all__ = ["SlackFake", "sign", "interaction_body", "command_body", "TOKEN", "APP_TOKEN", "SECRET", "CHANNEL"]

TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-1-A0APP-test-token"  # app-level token: the only one apps.connections.open takes
SECRET = "test-signing-secret"
CHANNEL = "C0APPROVALS"


class SlackFake(FakeServer):
    def __init__(self, token: str = TOKEN, channels: tuple[str, ...] = (CHANNEL,), app_token: str = APP_TOKEN):
        super().__init__()
        self.token = token
        self.app_token = app_token
        # Socket Mode: apps.connections.open answers with socket_url() (tests/fakes/slack_socket.py)
        self.socket_url: Callable[[], str] | None = None
        self.channels = set(channels)
        self.lock = threading.Lock()
        self.calls: list[tuple[str, dict]] = []  # every Web API call: (method, arguments)
        self.messages: dict[tuple[str, str], dict] = {}  # (channel, ts) -> message, as edited
        self.ephemerals: list[dict] = []
        self.views: list[dict] = []
        self.responses: list[dict] = []  # bodies POSTed to response_url
        self._failures: dict[str, list[tuple[int, str, str | None]]] = {}
        self._triggers: dict[str, float] = {}
        self._ts = 1700000000.0

    # ------------------------------------------------------------ knobs and views for tests

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def fail(self, method: str, error: str = "", status: int = 200, retry_after: str | None = None,
             times: int = 1) -> None:
        """The next ``times`` calls of ``method`` fail: ``error`` with HTTP 200 (Slack's way), or an
        HTTP ``status`` (429 with ``Retry-After``, 5xx)."""
        with self.lock:
            self._failures.setdefault(method, []).extend([(status, error, retry_after)] * times)

    def trigger(self) -> str:
        """A trigger_id as Slack puts in a click; it expires after 3 seconds, like Slack's."""
        tid = f"trig.{len(self._triggers) + 1}.{int(time.time() * 1000)}"
        self._triggers[tid] = time.monotonic()
        return tid

    def called(self, method: str) -> list[dict]:
        with self.lock:
            return [args for m, args in self.calls if m == method]

    def top_level(self) -> list[dict]:
        """Messages in the channel itself (not thread replies), oldest first."""
        with self.lock:
            return [m for m in self.messages.values() if not m.get("thread_ts")]

    def replies(self, ts: str) -> list[dict]:
        with self.lock:
            return [m for m in self.messages.values() if m.get("thread_ts") == ts]

    async def until(self, predicate, timeout: float = 30.0, what: str = "the fake Slack to see it"):
        """Poll ``predicate()`` until it returns something truthy (and return that)."""
        deadline = time.monotonic() + timeout
        while True:
            got = predicate()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; calls: {[m for m, _ in self.calls]}")
            await asyncio.sleep(0.05)

    async def gate_message(self, wid: str, gate: str, version: int, timeout: float = 90.0) -> dict:
        """The gate message the notify activity posted for ``gate`` v``version`` of run ``wid``."""
        def find():
            for m in self.top_level():
                for b in m["blocks"]:
                    for e in b.get("elements", []) if b["type"] == "actions" else []:
                        if bk.GateRef.parse(e["value"]) == bk.GateRef(wid, gate, version):
                            return json.loads(json.dumps(m))  # a copy: what the reviewer's screen shows
            return None
        return await self.until(find, timeout, f"the {gate} gate message v{version} of {wid}")

    def click(self, msg: dict, label: str, user: str, value: str | None = None) -> dict:
        """The ``block_actions`` payload Slack sends when ``user`` clicks the button ``label`` of ``msg``
        (over HTTP in ``payload=``, see interaction_body, or in a Socket Mode envelope)."""
        (button,) = [e for b in msg["blocks"] if b["type"] == "actions" for e in b["elements"]
                     if e["text"]["text"] == label]
        return {
            "type": "block_actions", "token": "legacy", "api_app_id": "A0APP", "trigger_id": self.trigger(),
            "user": {"id": user, "username": user.lower(), "team_id": "T0FAKE"},
            "team": {"id": "T0FAKE", "domain": "fake"},
            "container": {"type": "message", "message_ts": msg["ts"], "channel_id": CHANNEL, "is_ephemeral": False},
            "channel": {"id": CHANNEL, "name": "approvals"}, "message": msg,
            "response_url": f"{self.url}/response/click",
            "actions": [{"type": "button", "action_id": button["action_id"], "block_id": bk.ACTIONS_BLOCK,
                         "text": button["text"], "value": value or button["value"], "action_ts": str(time.time())}],
        }

    # ------------------------------------------------------------ the protocol

    def handle(self, h, method: str, url, body: bytes) -> None:
        if url.path.startswith("/response/"):
            with self.lock:
                self.responses.append(json.loads(body or b"{}"))
            h.send(200, b"ok", "text/plain")
            return
        if method != "POST" or not url.path.startswith("/api/"):
            h.send(404, b"not found", "text/plain")
            return
        api = url.path[len("/api/"):]
        ctype = h.headers.get("Content-Type", "")
        if "json" in ctype:
            args = json.loads(body or b"{}")
        else:
            args = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        token = (h.headers.get("Authorization") or "").removeprefix("Bearer ") or args.pop("token", "")
        with self.lock:
            self.calls.append((api, args))
            queued = self._failures.get(api)
            failure = queued.pop(0) if queued else None
        if failure:
            status, error, retry_after = failure
            headers = {"Retry-After": retry_after} if retry_after else {}
            if status >= 500:
                h.send(status, b"<html>upstream connect error</html>", "text/html", headers)
            else:
                h.send(status, json.dumps({"ok": False, "error": error or "ratelimited"}).encode(),
                       "application/json; charset=utf-8", headers)
            return
        if token != (self.app_token if api == "apps.connections.open" else self.token):
            h.send_json({"ok": False, "error": "not_authed" if not token else "invalid_auth"})
            return
        handler = getattr(self, "_" + api.replace(".", "_"), None)
        out = handler(args) if handler else {"ok": False, "error": "unknown_method"}
        h.send_json(out)

    def _next_ts(self) -> str:
        with self.lock:
            self._ts += 0.0001
            return f"{self._ts:.6f}"

    def _auth_test(self, args: dict) -> dict:
        return {"ok": True, "url": "https://fake.slack.test/", "team": "Fake", "user": "deepsci",
                "team_id": "T0FAKE", "user_id": "U0BOT", "bot_id": "B0BOT", "is_enterprise_install": False}

    def _apps_connections_open(self, args: dict) -> dict:
        if self.socket_url is None:
            return {"ok": False, "error": "unknown_method"}  # no Socket Mode endpoint in this test
        return {"ok": True, "url": self.socket_url()}

    def _chat_postMessage(self, args: dict) -> dict:  # noqa: N802 (Slack's method name)
        ch = args.get("channel")
        if ch not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if (bad := check_blocks(args.get("blocks") or [], 50)) is not None:
            return {"ok": False, "error": "invalid_blocks", "errors": [bad]}
        thread = args.get("thread_ts")
        if thread and (ch, thread) not in self.messages:
            return {"ok": False, "error": "thread_not_found"}
        ts = self._next_ts()
        msg = {"type": "message", "channel": ch, "ts": ts, "text": args.get("text", ""),
               "blocks": args.get("blocks") or [], "user": "U0BOT", "bot_id": "B0BOT",
               "thread_ts": thread, "reply_broadcast": bool(args.get("reply_broadcast"))}
        with self.lock:
            self.messages[(ch, ts)] = msg
        return {"ok": True, "channel": ch, "ts": ts, "message": msg}

    def _chat_update(self, args: dict) -> dict:
        key = (args.get("channel"), args.get("ts"))
        if key[0] not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        if (bad := check_blocks(args.get("blocks") or [], 50)) is not None:
            return {"ok": False, "error": "invalid_blocks", "errors": [bad]}
        with self.lock:
            msg = self.messages[key]
            msg.update(text=args.get("text", msg["text"]), blocks=args.get("blocks", msg["blocks"]),
                       edited={"user": "U0BOT", "ts": self._ts})
        return {"ok": True, "channel": key[0], "ts": key[1], "text": msg["text"]}

    def _chat_postEphemeral(self, args: dict) -> dict:  # noqa: N802
        if args.get("channel") not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        with self.lock:
            self.ephemerals.append(args)
        return {"ok": True, "message_ts": self._next_ts()}

    def _views_open(self, args: dict) -> dict:
        opened = self._triggers.get(args.get("trigger_id", ""))
        if opened is None:
            return {"ok": False, "error": "invalid_trigger_id"}
        if time.monotonic() - opened > 3.0:
            return {"ok": False, "error": "expired_trigger_id"}
        view = args.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        problem = check_view(view)
        if problem:
            return {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": [problem]}}
        view = {**view, "id": f"V{len(self.views) + 1:04d}", "hash": "h", "state": {"values": {}}}
        with self.lock:
            self.views.append(view)
        return {"ok": True, "view": view}


# ---------------------------------------------------------------- Block Kit limits Slack enforces


def _text_len(t: dict | None) -> int:
    return len((t or {}).get("text", ""))


def check_blocks(blocks: list[dict], max_blocks: int) -> str | None:
    """The first Block Kit limit ``blocks`` break (None: Slack would take them)."""
    if len(blocks) > max_blocks:
        return f"more than {max_blocks} blocks"
    for i, b in enumerate(blocks):
        kind = b.get("type")
        if kind not in ("header", "section", "context", "actions", "divider", "input"):
            return f"block {i}: unknown type {kind!r}"
        if kind == "header" and (b["text"].get("type") != "plain_text" or _text_len(b["text"]) > 150):
            return f"block {i}: header must be plain_text of at most 150 characters"
        if kind == "section" and not 1 <= _text_len(b.get("text")) <= 3000:
            return f"block {i}: section text must be 1 to 3000 characters"
        if kind == "context" and not 1 <= len(b.get("elements", [])) <= 10:
            return f"block {i}: context takes 1 to 10 elements"
        if kind == "actions":
            els = b.get("elements", [])
            if not 1 <= len(els) <= 25:
                return f"block {i}: actions take 1 to 25 elements"
            ids = [e.get("action_id") for e in els]
            if len(set(ids)) != len(ids):
                return f"block {i}: duplicate action_id"
            for e in els:
                if _text_len(e.get("text")) > 75 or len(e.get("value", "")) > 2000:
                    return f"block {i}: button text over 75 or value over 2000 characters"
    return None


def check_view(view: dict) -> str | None:
    if view.get("type") != "modal":
        return "view type must be modal"
    if _text_len(view.get("title")) > 24 or _text_len(view.get("submit")) > 24:
        return "title and submit must be at most 24 characters"
    if len(view.get("private_metadata", "")) > 3000:
        return "private_metadata over 3000 characters"
    for b in view.get("blocks", []):
        el = b.get("element", {})
        if b.get("type") == "input" and len(el.get("initial_value", "")) > el.get("max_length", 3000):
            return "initial_value longer than max_length"
    return check_blocks(view.get("blocks", []), 100)


# ---------------------------------------------------------------- what Slack sends to the bot


def sign(body: str, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with a request: ``v0=HMAC-SHA256(secret, "v0:{ts}:{body}")``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}


def interaction_body(payload: dict) -> str:
    """Interactive components (button clicks, modal submissions) arrive as ``payload=<json>``."""
    return urlencode({"payload": json.dumps(payload)})


def command_body(text: str, user: str, response_url: str, channel: str = CHANNEL, trigger_id: str = "t") -> str:
    return urlencode({"token": "legacy", "team_id": "T0FAKE", "team_domain": "fake", "channel_id": channel,
                      "channel_name": "approvals", "user_id": user, "user_name": user.lower(),
                      "command": "/research", "text": text, "api_app_id": "A0APP",
                      "response_url": response_url, "trigger_id": trigger_id})
