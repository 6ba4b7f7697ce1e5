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


def test_list_settings_take_json_or_comma_separated(monkeypatch):
    monkeypatch.setenv("DEEPSCI_SLACK_APPROVERS", "U01, U02")
    monkeypatch.setenv("DEEPSCI_FETCH_ALLOW_HOSTS", '["10.0.0.5:8080", "intranet.local"]')
    s = Settings(_env_file=None)
    assert s.slack_approvers == ["U01", "U02"]
    assert s.fetch_allow_hosts == ["10.0.0.5:8080", "intranet.local"]


def test_model_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("DEEPSCI_LLM_PRICES", '{"my-model": [0.5, 1.5]}')
    s = Settings(_env_file=None)
    assert s.llm_mode == s.llm_model and s.llm_prices == {"my-model": [0.5, 1.5]}

