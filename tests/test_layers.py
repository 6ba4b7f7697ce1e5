"""Imports point one way: clients (starter/) -> workflows/ -> activities/ -> the domain package
deepsci/; workers/ wires workflows and activities; evals/ (datasets and scoring) sits on the domain
only. Every import is checked, at module level, inside functions and under TYPE_CHECKING."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("deepsci", "evals", "activities", "workflows", "workers", "starter")

# What each layer may import of the others (itself always).
ALLOWED = {
    "deepsci": set(),
    "evals": {"deepsci"},
    "activities": {"deepsci"},
    "workflows": {"activities", "deepsci"},
    "workers": {"workflows", "activities", "deepsci"},
    "starter": {"workflows", "activities", "deepsci", "evals"},
}
# The one place a client may import a worker: `deepsci worker` runs one in the foreground.
EXCEPTIONS = {("starter/cli/stack.py", "worker", "workers")}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


class _Imports(ast.NodeVisitor):
    """(line, enclosing function or '', imported module) for every import in a module."""

    def __init__(self, module: str, is_package: bool):
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[tuple[int, str, str]] = []
        self._functions: list[str] = []

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._functions.append(node.name)
        self.generic_visit(node)
        self._functions.pop()

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def _add(self, node: ast.AST, name: str) -> None:
        self.found.append((node.lineno, self._functions[0] if self._functions else "", name))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:  # relative: resolve against this module's package
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            name = ".".join([*base, node.module] if node.module else base)
        else:
            name = node.module or ""
        self._add(node, name)


def upward_imports(root: Path) -> list[str]:
    """Every import under ``root`` that runs against the layering, as ``file:line: a imports b``."""
    bad = []
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            visitor = _Imports(_module_name(path, root), path.name == "__init__.py")
            visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=rel))
            for line, function, name in visitor.found:
                target = name.split(".")[0]
                if target not in LAYERS or target == layer or target in ALLOWED[layer]:
                    continue
                if (rel, function, target) in EXCEPTIONS:
                    continue
                where = f" (in {function})" if function else ""
                bad.append(f"{rel}:{line}{where}: {layer} imports {name}")
    return bad


def test_no_import_runs_upward():
    bad = upward_imports(REPO)
    assert not bad, "imports that run upward:\n" + "\n".join(bad)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for layer in LAYERS:
        (root / layer).mkdir(parents=True, exist_ok=True)
        (root / layer / "__init__.py").write_text("")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_a_planted_upward_import_is_named_with_its_file_and_line(tmp_path):
    root = _tree(tmp_path, {
        "deepsci/slack/gates.py": "from starter.runs import start\n",
        "deepsci/report.py": "def f():\n    import workflows.research\n",
        "activities/publishing.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                    "    from workflows.research import ResearchWorkflow\n",
        "evals/runner.py": "async def run():\n    from starter.runs import report_json\n",
        "workflows/research.py": "from ..workers import main\n",
        "starter/cli/runs.py": "def run():\n    from workers.main import main\n",
        # allowed: downward imports, the worker command, imports of third-party names
        "starter/cli/stack.py": "def worker():\n    from workers.main import main\n",
        "workers/main.py": "from workflows.research import W\nfrom activities import publishing\n",
        "workflows/investigate.py": "from . import research\nfrom activities.sources import S\n",
        "evals/scoring.py": "from deepsci.text import normalize_ws\nimport json\n",
    })
    assert upward_imports(root) == [
        "deepsci/report.py:2 (in f): deepsci imports workflows.research",
        "deepsci/slack/gates.py:1: deepsci imports starter.runs",
        "evals/runner.py:2 (in run): evals imports starter.runs",
        "activities/publishing.py:3: activities imports workflows.research",
        "workflows/research.py:1: workflows imports workers",
        "starter/cli/runs.py:2 (in run): starter imports workers.main",
    ]
