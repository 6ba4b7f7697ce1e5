"""The test tree mirrors the code tree, and test modules share code through tests/helpers.py,
tests/fakes/ and conftest fixtures, never by importing one another (which runs the imported
module's tests' fixtures and setup twice and couples unrelated files)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# One folder per code package the tests mirror, plus full runs end to end.
MIRRORED = ("workflows", "activities", "deepsci", "starter", "e2e")


def _is_test_module(dotted: str) -> bool:
    return dotted.rsplit(".", 1)[-1].startswith("test_")


def imports_of_test_modules(root: Path) -> list[str]:
    """``path:line: module`` for every import, at any depth of a test file, that names a test_* module."""
    found = []
    for path in sorted(root.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                # `from tests.e2e import test_x` and `from .test_x import y` both import a test module
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            found += [f"{path.relative_to(root)}:{node.lineno}: {n}" for n in names if _is_test_module(n)]
    return found


def test_no_test_module_imports_another():
    assert imports_of_test_modules(TESTS) == []


def test_the_check_catches_each_way_of_importing_a_test_module(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "test_a.py").write_text(
        "import os\n"
        "from tests.helpers import CORPUS\n"
        "from tests.starter.test_cli import _env\n"
        "from tests.e2e import test_model_mode\n"
        "def test_x():\n"
        "    from .test_b import y\n"
        "    import tests.workflows.test_deadline\n")
    assert imports_of_test_modules(tmp_path) == [
        "pkg/test_a.py:3: tests.starter.test_cli",
        "pkg/test_a.py:4: tests.e2e.test_model_mode",
        "pkg/test_a.py:6: test_b",
        "pkg/test_a.py:7: tests.workflows.test_deadline",
    ]


def test_tests_mirror_the_code_tree():
    repo = TESTS.parent
    for name in MIRRORED:
        folder = TESTS / name
        assert (folder / "__init__.py").is_file(), f"tests/{name}/ is missing (or not a package)"
        assert list(folder.glob("test_*.py")), f"tests/{name}/ has no tests"
        assert name == "e2e" or (repo / name).is_dir(), f"tests/{name}/ mirrors no code folder {name}/"
