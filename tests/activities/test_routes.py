"""The route table: every activity runs on one queue role with one named policy, the worker
registers exactly the table, and a mistake in the table fails when its module loads."""

from __future__ import annotations

import importlib
import sys

import pytest
from temporalio import activity

from activities.routes import ACTIVITY_CLASSES, ROUTES, Route, activity_name, check_routes, route_of
from activities.sources import SourceActivities
from deepsci.policies import POLICIES
from workers.main import activities_by_role


def test_every_activity_of_the_activity_classes_is_routed_exactly_once():
    names = [activity_name(fn) for cls in ACTIVITY_CLASSES for fn in vars(cls).values()
             if callable(fn) and activity_name(fn)]
    assert sorted(names) == sorted(r.name for r in ROUTES.values())
    assert len(set(names)) == len(names) == 10
    assert {r.role for r in ROUTES.values()} == {"llm", "io", "cpu"}


def test_the_worker_registers_the_table_on_each_queue(deps):
    registered = {role: sorted(activity_name(fn) for fn in fns) for role, fns in activities_by_role(deps).items()}
    table: dict[str, list[str]] = {}
    for r in ROUTES.values():
        table.setdefault(r.role, []).append(r.name)
    assert registered == {role: sorted(names) for role, names in table.items()}
    assert registered["cpu"] == ["fetch_parse", "index", "retrieve"]


def test_a_missing_or_doubled_route_is_refused_with_its_name():
    class ExtraActivities:
        @activity.defn(name="extra")
        def extra(self, x: int) -> int:
            return x

    with pytest.raises(ValueError, match="ExtraActivities.extra has no route"):
        check_routes(ROUTES.values(), [*ACTIVITY_CLASSES, ExtraActivities])
    twice = [*ROUTES.values(), Route(SourceActivities.search, "cpu", POLICIES.fetch, "fetch")]
    with pytest.raises(ValueError, match="SourceActivities.search is routed twice"):
        check_routes(twice, ACTIVITY_CLASSES)
    with pytest.raises(ValueError, match="unknown queue role 'gpu'"):
        check_routes([Route(SourceActivities.search, "gpu", POLICIES.search, "fetch")], [])  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="ExtraActivities.extra"):
        route_of(ExtraActivities.extra)


def test_a_misspelt_policy_fails_when_the_table_module_loads(tmp_path, monkeypatch):
    (tmp_path / "typo_routes.py").write_text(
        "from activities.routes import Route\n"
        "from activities.sources import SourceActivities\n"
        "from deepsci.policies import POLICIES\n"
        "ROUTES = [Route(SourceActivities.search, 'io', POLICIES.serach, 'fetch')]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(AttributeError, match="serach"):
        importlib.import_module("typo_routes")
    sys.modules.pop("typo_routes", None)
