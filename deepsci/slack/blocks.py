"""Block Kit builders: the gate message (question, plan or report, deadline, buttons), its decided
form, the two modals and the `/research status` reply. Pure functions, no I/O."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import get_args

from deepsci.contracts import DecisionRecord, GateName, NotifyInput, Progress

__all__ = [
    "ACTION_APPROVE", "ACTION_REJECT", "ACTION_CHANGES", "ACTION_EDIT_PLAN", "ACTIONS_BLOCK",
    "VIEW_CHANGES", "VIEW_EDIT_PLAN", "GateRef", "escape", "mention", "slack_date",
    "gate_blocks", "gate_text", "decided_blocks", "outcome_line", "without_actions",
    "changes_modal", "edit_plan_modal", "status_text",
]

ACTION_APPROVE = "deepsci_approve"
ACTION_REJECT = "deepsci_reject"
ACTION_CHANGES = "deepsci_request_changes"
ACTION_EDIT_PLAN = "deepsci_edit_plan"
ACTIONS_BLOCK = "deepsci_gate"
VIEW_CHANGES = "deepsci_changes_modal"
VIEW_EDIT_PLAN = "deepsci_edit_plan_modal"

# Slack's limits: a section's text is at most 3,000 characters, a header's 150, a button value 2,000.
_SECTION_MAX = 2900
_MAX_SOURCES = 15
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


@dataclass(frozen=True)
class GateRef:
    """What a button or a modal carries: which run, which gate, and the version the reviewer saw."""

    workflow_id: str
    gate: GateName
    version: int

    def value(self) -> str:
        return json.dumps({"w": self.workflow_id, "g": self.gate, "v": self.version}, separators=(",", ":"))

    @classmethod
    def parse(cls, value: str) -> GateRef:
        d = json.loads(value)
        gate = d["g"]
        if gate not in get_args(GateName):
            raise ValueError(f"unknown gate {gate!r} in a button value")
        return cls(workflow_id=str(d["w"]), gate=gate, version=int(d["v"]))


def escape(text: str) -> str:
    """Slack mrkdwn control characters; user text (questions, plans, comments) must not form links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int = _SECTION_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mention(who: str) -> str:
    """``<@U123>`` for a Slack user id (rendered as the person's name), the plain name otherwise
    (CLI reviewers, ``deadline``, ``auto``)."""
    return f"<@{who}>" if _USER_ID.match(who) else escape(who)


def slack_date(when: datetime | None) -> str:
    """A date Slack renders in each reader's own time zone, with an ISO fallback."""
    if when is None:
        return "none"
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{when.isoformat(timespec='minutes')}>"


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text)}}


def _button(text: str, action_id: str, value: str, style: str | None = None, confirm: dict | None = None) -> dict:
    b: dict = {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id,
               "value": value}
    if style:
        b["style"] = style
    if confirm:
        b["confirm"] = confirm
    return b


def gate_text(n: NotifyInput) -> str:
    """Fallback text: notifications and screen readers show this instead of the blocks."""
    return f"Approval needed: the {n.gate} of {n.workflow_id} (version {n.version}): {_clip(n.question, 300)}"


def _body_blocks(n: NotifyInput, link: str) -> list[dict]:
    title = "Approve the research plan?" if n.gate == "plan" else "Approve the research report?"
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": title}}]
    if n.question:
        blocks.append(_section(f"*Question*\n{escape(n.question)}"))
    if n.gate == "plan":
        lines = "\n".join(f"{i}. {escape(q)}" for i, q in enumerate(n.plan, 1)) or "_(empty plan)_"
        blocks.append(_section(f"*Plan* (version {n.version})\n{lines}"))
    else:
        blocks.append(_section(f"*Report summary* (version {n.version})\n{escape(n.summary) or '_(no summary)_'}"))
        if n.sources:
            shown = [f"• {escape(s)}" for s in n.sources[:_MAX_SOURCES]]
            if len(n.sources) > _MAX_SOURCES:
                shown.append(f"… and {len(n.sources) - _MAX_SOURCES} more in the Web UI")
            blocks.append(_section("*Sources*\n" + "\n".join(shown)))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(
        f"Run `{escape(n.workflow_id)}` · deadline {slack_date(n.deadline)} · <{link}|Open in Temporal Web UI>")}]})
    return blocks


def gate_blocks(n: NotifyInput, link: str) -> list[dict]:
    """The gate message: what to decide on, and the buttons (their value carries the version)."""
    ref = GateRef(n.workflow_id, n.gate, n.version).value()
    confirm = {"title": {"type": "plain_text", "text": "Reject?"},
               "text": {"type": "plain_text", "text": "The run ends with status rejected."},
               "confirm": {"type": "plain_text", "text": "Reject"},
               "deny": {"type": "plain_text", "text": "Cancel"}}
    if n.gate == "plan":
        buttons = [_button("Approve", ACTION_APPROVE, ref, "primary"),
                   _button("Edit plan", ACTION_EDIT_PLAN, ref),
                   _button("Reject", ACTION_REJECT, ref, "danger", confirm)]
    else:
        buttons = [_button("Approve", ACTION_APPROVE, ref, "primary"),
                   _button("Reject", ACTION_REJECT, ref, "danger", confirm),
                   _button("Request changes", ACTION_CHANGES, ref)]
    return [*_body_blocks(n, link), {"type": "actions", "block_id": ACTIONS_BLOCK, "elements": buttons}]


_VERB = {"approve": (":white_check_mark:", "Approved"), "reject": (":x:", "Rejected"),
         "request_changes": (":pencil2:", "Changes requested")}


def outcome_line(decision: str, reviewer: str, at: datetime | None, comment: str = "",
                 by_deadline: bool = False, edited_plan: bool = False) -> str:
    emoji, verb = _VERB.get(decision, (":grey_question:", decision))
    who = "at the deadline" if by_deadline else f"by {mention(reviewer)}"
    line = f"{emoji} *{verb}{' with an edited plan' if edited_plan else ''}* {who} · {slack_date(at)}"
    if comment:
        line += "\n> " + escape(comment).replace("\n", "\n> ")
    return line


def decided_blocks(n: NotifyInput, link: str, d: DecisionRecord, edited_plan: list[str] | None = None) -> list[dict]:
    """The gate message once decided: the same content, the buttons replaced by the outcome (and the
    plan the run follows, when the reviewer edited it)."""
    outcome = outcome_line(d.decision, d.reviewer, d.at, d.comment, d.by_deadline, edited_plan=bool(edited_plan))
    if edited_plan:
        outcome += "\n" + "\n".join(f"{i}. {escape(q)}" for i, q in enumerate(edited_plan, 1))
    return [*_body_blocks(n, link), _section(outcome)]


def without_actions(blocks: list[dict], outcome: str) -> list[dict]:
    """A posted gate message (as Slack sends it back with a click) with its buttons replaced."""
    kept = [b for b in blocks if b.get("block_id") != ACTIONS_BLOCK and b.get("type") != "actions"]
    return [*kept, _section(outcome)]


def _modal(callback_id: str, title: str, submit: str, meta: dict, block: dict) -> dict:
    return {"type": "modal", "callback_id": callback_id, "private_metadata": json.dumps(meta),
            "title": {"type": "plain_text", "text": title}, "submit": {"type": "plain_text", "text": submit},
            "close": {"type": "plain_text", "text": "Cancel"}, "blocks": [block]}


def changes_modal(ref: GateRef, channel: str, ts: str) -> dict:
    meta = {"ref": ref.value(), "channel": channel, "ts": ts}
    return _modal(VIEW_CHANGES, "Request changes", "Send", meta, {
        "type": "input", "block_id": "comment",
        "label": {"type": "plain_text", "text": "What should the next revision change?"},
        "element": {"type": "plain_text_input", "action_id": "comment", "multiline": True,
                    "max_length": 2000},
    })


def edit_plan_modal(ref: GateRef, channel: str, ts: str, plan: list[str]) -> dict:
    meta = {"ref": ref.value(), "channel": channel, "ts": ts}
    return _modal(VIEW_EDIT_PLAN, "Edit the plan", "Approve plan", meta, {
        "type": "input", "block_id": "plan",
        "label": {"type": "plain_text", "text": "Sub-questions, one per line"},
        "hint": {"type": "plain_text", "text": "The run investigates exactly these (at most 12)."},
        "element": {"type": "plain_text_input", "action_id": "plan", "multiline": True,
                    "initial_value": _clip("\n".join(plan), 3000), "max_length": 3000},
    })


def status_text(workflow_id: str, status: str, p: Progress, link: str) -> str:
    """`/research status <id>`: stage, counts, open gate and deadline, decisions so far."""
    lines = [f"*{escape(workflow_id)}* · {status.lower()} · stage `{p.stage}`",
             f"sub-questions {p.sub_questions_done}/{p.sub_questions_total} · sources {p.sources_parsed} "
             f"parsed, {p.sources_failed} failed · chunks {p.chunks_indexed} · model calls {p.llm_calls}"]
    if p.open_gate:
        lines.append(f"waiting on the *{p.open_gate}* gate (version {p.gate_version}) · deadline "
                     f"{slack_date(p.gate_deadline)} · reminders {p.reminders_sent}"
                     f"{' · escalated' if p.escalated else ''}")
    lines += [f"• {d.gate}: {d.decision} by {mention(d.reviewer)}" for d in p.decisions]
    lines.append(f"<{link}|Open in Temporal Web UI>")
    return "\n".join(lines)
