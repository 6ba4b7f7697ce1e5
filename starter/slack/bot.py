"""The Bolt app: gate buttons and modals turned into the workflow's `decide` Update, and `/research`.

Every listener acknowledges first (Slack gives 3 seconds), then checks the clicker against
``slack_approvers`` and asks Temporal; the workflow's validator checks again. An accepted decision
edits the gate message to show who decided what and when; a refusal is shown to the clicker only
(``chat.postEphemeral``) with its reason. Bolt verifies every HTTP request's signature and
timestamp (older than 5 minutes: refused) before any listener runs.
"""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from deepsci.contracts import DecisionKind, DecisionOutcome, GateDecision
from deepsci.observe.tracing import trace_url
from deepsci.settings import Settings
from deepsci.slack import blocks as bk
from deepsci.slack.poster import web_client
from deepsci.temporal_client import web_ui_link
from starter.slack import gates
from starter.slack.bridge import TemporalBridge

__all__ = ["build_app", "USAGE"]

log = logging.getLogger("deepsci.slack.bot")

USAGE = ("Usage: `/research <question>` starts a research run; `/research status <run id>` shows its "
         "progress. Plans and reports are posted to the approvals channel with buttons.")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_MAX_PLAN = 12  # ResearchRequest.max_sub_questions' upper bound


class _Bot:
    def __init__(self, settings: Settings, bridge: TemporalBridge):
        self.settings = settings
        self.bridge = bridge
        # Gate messages as Slack showed them at a click, so a modal's submission can edit the
        # message too (view payloads do not carry it). Lost on restart: the notify activity's
        # `decided` edit still happens.
        self.shown: OrderedDict[tuple[str, str], list[dict]] = OrderedDict()

    # ---------------------------------------------------------------- helpers

    def allowed(self, user: str) -> bool:
        return not self.settings.slack_approvers or user in self.settings.slack_approvers

    def refuse(self, client: WebClient, channel: str, user: str, reason: str) -> None:
        log.info("slack: refused %s in %s: %s", user, channel, reason)
        client.chat_postEphemeral(channel=channel, user=user, text=f":no_entry: Not recorded: {reason}.")

    def not_approver(self, client: WebClient, channel: str, user: str) -> None:
        self.refuse(client, channel, user, f"<@{user}> is not one of the approvers (DEEPSCI_SLACK_APPROVERS); "
                                           "ask one of them to decide")

    def ask(self, fn, timeout: float = 20.0) -> Any:
        """Run a gates.* call on the bridge; Temporal being unreachable or slow becomes a Refusal."""
        try:
            return self.bridge.run(fn, timeout=timeout)
        except ValidationError:
            raise
        except Exception as exc:
            log.exception("slack: a Temporal call failed")
            return gates.Refusal(f"could not reach Temporal ({type(exc).__name__}); nothing was recorded, "
                                 "try again")

    def remember(self, channel: str, ts: str, blocks: list[dict]) -> None:
        self.shown[(channel, ts)] = blocks
        while len(self.shown) > 500:
            self.shown.popitem(last=False)

    def decide(self, client: WebClient, channel: str, ts: str, user: str, ref: bk.GateRef, decision: DecisionKind,
               comment: str = "", plan: list[str] | None = None) -> DecisionOutcome | None:
        """Send the decision; on success edit the gate message, else tell the clicker why not."""
        d = GateDecision(gate=ref.gate, decision=decision, reviewer=user, comment=comment, plan=plan,
                         version=ref.version)
        got = self.ask(lambda c: gates.decide(c, ref.workflow_id, d))
        if isinstance(got, gates.Refusal):
            self.refuse(client, channel, user, got.reason)
            return None
        log.info("slack: %s %s the %s gate v%d of %s", user, decision, ref.gate, ref.version, ref.workflow_id)
        shown = self.shown.pop((channel, ts), None)
        if shown is not None:
            outcome = bk.outcome_line(decision, user, datetime.now(UTC), comment, edited_plan=plan is not None)
            if plan is not None:
                outcome += "\n" + "\n".join(f"{i}. {bk.escape(q)}" for i, q in enumerate(plan, 1))
            try:
                client.chat_update(channel=channel, ts=ts, blocks=bk.without_actions(shown, outcome),
                                   text=f"The {ref.gate} of {ref.workflow_id}: {decision} by {user}")
            except SlackApiError as exc:  # the decision stands; the notify activity edits the message too
                log.warning("slack: could not edit the gate message %s/%s: %s", channel, ts, exc)
        return got

    # ---------------------------------------------------------------- buttons

    def on_button(self, ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        user, channel, ts = _where(body)
        ref = bk.GateRef.parse(action["value"])
        if not self.allowed(user):
            self.not_approver(client, channel, user)
            return
        self.remember(channel, ts, (body.get("message") or {}).get("blocks") or [])
        if action["action_id"] == bk.ACTION_CHANGES:
            client.views_open(trigger_id=body["trigger_id"], view=bk.changes_modal(ref, channel, ts))
            return
        if action["action_id"] == bk.ACTION_EDIT_PLAN:
            # The plan the run holds now (the message may be older); trigger ids live 3 s, so the query is short.
            p = self.ask(lambda c: gates.progress(c, ref.workflow_id), timeout=2.5)
            if isinstance(p, gates.Refusal):
                self.refuse(client, channel, user, p.reason)
                return
            d = GateDecision(gate="plan", decision="approve", reviewer=user, version=ref.version)
            if (closed := gates.closed_reason(p, d)) is not None:
                self.refuse(client, channel, user, closed)
                return
            client.views_open(trigger_id=body["trigger_id"], view=bk.edit_plan_modal(ref, channel, ts, p.plan))
            return
        decision: DecisionKind = "approve" if action["action_id"] == bk.ACTION_APPROVE else "reject"
        self.decide(client, channel, ts, user, ref, decision)

    # ---------------------------------------------------------------- modals

    def on_changes(self, ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        comment = (_input(view, "comment") or "").strip()
        if not comment:
            ack(response_action="errors", errors={"comment": "Say what the next revision should change."})
            return
        ack()
        self._submitted(body, view, client, "request_changes", comment=comment)

    def on_edit_plan(self, ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        lines = [_BULLET.sub("", x).strip() for x in (_input(view, "plan") or "").splitlines()]
        plan = [x for x in lines if x]
        if not plan or len(plan) > _MAX_PLAN:
            ack(response_action="errors", errors={"plan": f"Write 1 to {_MAX_PLAN} sub-questions, one per line."})
            return
        ack()
        self._submitted(body, view, client, "approve", plan=plan)

    def _submitted(self, body: dict, view: dict, client: WebClient, decision: DecisionKind, **kw: Any) -> None:
        meta = json.loads(view["private_metadata"])
        user, channel, ts = body["user"]["id"], meta["channel"], meta["ts"]
        if not self.allowed(user):  # the modal was opened by an approver; check again, cheaply
            self.not_approver(client, channel, user)
            return
        self.decide(client, channel, ts, user, bk.GateRef.parse(meta["ref"]), decision, **kw)

    # ---------------------------------------------------------------- /research

    def on_research(self, ack: Ack, command: dict, respond: Respond) -> None:
        text = (command.get("text") or "").strip()
        if not text or text in ("help", "status"):
            ack(text=USAGE)
            return
        ack()
        user = command["user_id"]
        if text.split(maxsplit=1)[0] == "status":
            wid = text.split(maxsplit=1)[1].strip().strip("`")
            got = self.ask(lambda c: gates.status(c, wid))
            if isinstance(got, gates.Refusal):
                respond(text=f":no_entry: {got.reason}.", response_type="ephemeral")
                return
            state, p = got
            respond(text=bk.status_text(wid, state, p, web_ui_link(self.settings, wid)), response_type="ephemeral")
            return
        try:
            got = self.ask(lambda c: gates.start(c, self.settings, text))
        except ValidationError as exc:
            respond(text=f":no_entry: Not started: {exc.errors()[0]['msg']}. {USAGE}", response_type="ephemeral")
            return
        if isinstance(got, gates.Refusal):
            respond(text=f":no_entry: Not started: {got.reason}.", response_type="ephemeral")
            return
        wid, started = got
        link = web_ui_link(self.settings, wid)
        # The run's trace (when this process traces): where its time and cost went, span by span.
        traced = trace_url(self.settings, started.trace_id)
        trace_link = f" · <{traced}|Open the trace> (`{started.trace_id}`)" if traced else ""
        if started.attached:
            # The CLI's words: attached to a running or published run; anything else is asked again.
            state = started.outcome or (started.status.name.lower() if started.status else "unknown")
            msg = (f"<@{user}> asked again: attached to the {state} run `{wid}`. "
                   f"<{link}|Open in Temporal Web UI>{trace_link} · `/research status {wid}`")
        else:
            verb = (f"started a new run `{wid}` (the earlier one {started.outcome})" if started.replaced
                    else f"started `{wid}`")
            msg = (f"<@{user}> {verb}: {bk.escape(text)}\nThe plan is posted for approval when it is "
                   f"ready. <{link}|Open in Temporal Web UI>{trace_link} · `/research status {wid}`")
        log.info("slack: %s started %s (attached: %s, earlier: %s)", user, wid, started.attached, started.outcome)
        respond(text=msg, response_type="in_channel")


def _where(body: dict) -> tuple[str, str, str]:
    """Who clicked, and the channel and ts of the message they clicked in."""
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id", "")
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts", "")
    return body["user"]["id"], channel, ts


def _input(view: dict, block_id: str) -> str | None:
    return ((view.get("state") or {}).get("values", {}).get(block_id, {}).get(block_id) or {}).get("value")


def build_app(settings: Settings, bridge: TemporalBridge) -> App:
    """The Bolt app (HTTP or Socket Mode), its Web API client on ``settings.slack_api_url``."""
    bot = _Bot(settings, bridge)
    app = App(client=web_client(settings), signing_secret=settings.slack_signing_secret or "",
              request_verification_enabled=True, name="deepsci")
    for action_id in (bk.ACTION_APPROVE, bk.ACTION_REJECT, bk.ACTION_CHANGES, bk.ACTION_EDIT_PLAN):
        app.action(action_id)(bot.on_button)
    app.view(bk.VIEW_CHANGES)(bot.on_changes)
    app.view(bk.VIEW_EDIT_PLAN)(bot.on_edit_plan)
    app.command("/research")(bot.on_research)

    @app.error
    def on_error(error: Exception, body: dict) -> None:
        log.error("slack: a listener failed on %s: %r", body.get("type") or body.get("command"), error)

    return app
