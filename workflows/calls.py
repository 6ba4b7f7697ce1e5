"""The one way workflow code calls an activity: its queue and policy come from the route table, and
its summary (what the Web UI shows on the activity) names its subject."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.routes import route_of
    from deepsci.queues import Queues

__all__ = ["call", "summary_of"]

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741

_MAX_SUMMARY = 160  # the Web UI shows one line; history keeps it small


def call(method: Callable[[Any, I], O], arg: I) -> Awaitable[O]:
    """Run ``method`` (e.g. ``SourceActivities.search``) with ``arg`` on the queue of its role (of
    this run's queue prefix), with its named policy: ``await call(SourceActivities.search, inp)``."""
    route = route_of(method)
    queues = Queues.of_workflow_queue(workflow.info().task_queue)
    return workflow.execute_activity_method(method, arg, task_queue=queues.of(route.role),
                                            summary=summary_of(route.name, arg), **route.policy.kwargs())


def _short(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _file_name(uri: str) -> str:
    path = unquote(urlsplit(uri).path).rstrip("/")
    return path.rsplit("/", 1)[-1] or urlsplit(uri).netloc or uri


def _subject(arg: Any) -> str:
    """The thing an activity works on, from the fields its input has (inputs are pydantic models)."""
    sq = getattr(arg, "sub_question", None)
    if hasattr(arg, "kind") and hasattr(arg, "gate"):  # NotifyInput
        return f"{arg.kind} {arg.gate} v{arg.version}"
    if sq is not None:  # DraftInput
        rnd = getattr(arg, "revision_round", 0)
        return f"{sq.id}: {_short(sq.text)}" + (f" (round {rnd})" if rnd else "")
    if hasattr(arg, "uri"):  # FetchParseInput
        return _file_name(arg.uri)
    if hasattr(arg, "drafts"):  # CritiqueInput, AggregateInput
        extra = f", comment: {_short(arg.reviewer_comment, 60)}" if getattr(arg, "reviewer_comment", "") else ""
        return f"{len(arg.drafts)} sections{extra}"
    if hasattr(arg, "query"):  # SearchInput, RetrieveInput
        return _short(arg.query)
    if hasattr(arg, "content_hashes"):  # IndexInput
        return f"{len(arg.content_hashes)} documents"
    if hasattr(arg, "question"):  # PlanInput
        return _short(arg.question)
    return str(getattr(arg, "workflow_id", ""))  # PublishInput


def summary_of(name: str, arg: Any) -> str:
    """``fetch_parse pep-0572.pdf``, ``draft sq2: <sub-question>``, ``notify gate_opened plan v1``."""
    return _short(f"{name} {_subject(arg)}".strip(), _MAX_SUMMARY)
