"""Settings come from DEEPSCI_* variables and a few standard names, never from unrelated ones."""

from __future__ import annotations

from pathlib import Path

from deepsci.settings import Settings


def test_home_ignores_the_users_HOME(monkeypatch):
    monkeypatch.delenv("DEEPSCI_HOME", raising=False)
    monkeypatch.setenv("HOME", "/somewhere/else")
    s = Settings(_env_file=None)
    assert s.home_dir == (Path.cwd() / ".deepsci").resolve()
    assert s.reports_path == s.home_dir / "reports"


def test_standard_names_and_prefix(monkeypatch):
    monkeypatch.setenv("DEEPSCI_HOME", "/tmp/dsx")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/x")
    monkeypatch.setenv("DEEPSCI_TASK_QUEUE_PREFIX", "team")
    s = Settings(_env_file=None)
    assert s.home_dir == Path("/tmp/dsx")
    assert s.dsn == "postgresql://u@db:5432/x"
    assert s.queue("cpu") == "team-cpu"
    assert s.llm_mode == "offline"
