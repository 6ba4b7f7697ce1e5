"""Typer options derived from pydantic model fields: the model is the one source of a run option's
default, bounds and help text, and a refused value is the model's own reason, in one line."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

import annotated_types as at
import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

__all__ = ["switch", "model_options", "bounds_text", "refusal"]

F = TypeVar("F", bound=Callable[..., Any])


def switch(*decls: str, help: str | None = None) -> Any:  # noqa: A002 - typer's name
    """A boolean flag shown as a plain switch in --help (an empty metavar hides the `<bool>` label)."""
    return typer.Option(*decls, help=help, metavar="")


def bounds_text(info: FieldInfo) -> str:
    """The field's numeric bounds as typer prints ranges, e.g. ``[0<x<=31536000]`` ('' if none)."""
    low = high = ""
    for m in info.metadata:
        if isinstance(m, at.Ge):
            low = f"{m.ge}<="
        elif isinstance(m, at.Gt):
            low = f"{m.gt}<"
        elif isinstance(m, at.Le):
            high = f"<={m.le}"
        elif isinstance(m, at.Lt):
            high = f"<{m.lt}"
    return f"[{low}x{high}]" if low or high else ""


def _option(info: FieldInfo, flag: str) -> tuple[Any, Any]:
    """(annotation, default) of a command parameter that sets a field through ``--flag``."""
    decl = "--" + flag.replace("_", "-")
    text = " ".join(t for t in (info.description, bounds_text(info)) if t) or None
    if info.annotation is bool:
        option = switch(decl, help=text)
    else:
        option = typer.Option(decl, help=text)
    return Annotated[info.annotation, option], info.get_default(call_default_factory=True)


def model_options(model: type[BaseModel], flags: Mapping[str, str]) -> Callable[[F], F]:
    """Give a command one option per ``flags`` entry (parameter name -> model field), typed,
    defaulted and described by the field. The command receives their values as ``fields``, a
    dict keyed by field name for ``model(**fields)``; bounds are checked there, by the model."""

    def wrap(fn: F) -> F:
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "fields"]
        added = []
        for name, field in flags.items():
            annotation, default = _option(model.model_fields[field], name)
            added.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                           annotation=annotation))

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            fields = {field: kwargs.pop(name) for name, field in flags.items()}
            return fn(**kwargs, fields=fields)

        params = own + added
        command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command  # type: ignore[return-value]

    return wrap


def refusal(exc: ValidationError, flags: Mapping[str, str]) -> str:
    """One line naming each refused option by its flag (``--gate-deadline: Input should be ...``)."""
    by_field = {field: "--" + name.replace("_", "-") for name, field in flags.items()}
    parts = []
    for e in exc.errors():
        field = str(e["loc"][0]) if e["loc"] else ""
        parts.append(f"{by_field.get(field, field)}: {e['msg']}")
    return "; ".join(parts)
