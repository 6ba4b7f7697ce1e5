"""`deepsci up` on a private state dir (the test Temporal server and Postgres as external parts, so
only the worker is spawned): a worker started with another configuration is refused by name, not
silently kept; `--restart` replaces it; a second worker on the same Qdrant folder is refused in one
line; `down` returns when the worker is gone."""

from __future__ import annotations

import subprocess
import time
import uuid

from deepsci.settings import Settings
from starter.stack import qdrant_holder
from tests.helpers import DEEPSCI, cli_env


def _pid(home) -> int:
    return int((home / "run" / "worker.pid").read_text())


def _alive(pid: int) -> bool:
    try:
        return "workers.main" in open(f"/proc/{pid}/cmdline").read()
    except OSError:
        return False


def test_up_refuses_a_changed_configuration_and_restart_replaces_the_worker(env, settings, tmp_path):
    home = tmp_path / "state"
    base = {k: v for k, v in cli_env(env, settings, f"tcfg{uuid.uuid4().hex[:6]}").items()
            if not k.startswith(("OPENAI_", "DEEPSCI_OPENAI_"))}
    base["DEEPSCI_HOME"] = str(home)
    model = {**base, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}

    def deepsci(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([DEEPSCI, *args], env=environ, capture_output=True, text=True, timeout=180)

    old = new = 0
    first = deepsci(base, "up")
    try:
        assert first.returncode == 0, first.stderr
        old = _pid(home)
        private = Settings(home=home, _env_file=None)
        for _ in range(600):  # the worker opens Qdrant after connecting and loading the model (bounded)
            if qdrant_holder(private) is not None or not _alive(old):
                break
            time.sleep(0.2)
        assert _alive(old), (home / "logs" / "worker.log").read_text()[-2000:]

        second = deepsci(base, "worker")
        assert second.returncode == 2
        assert second.stderr.strip().count("\n") <= 1 and "Traceback" not in second.stderr
        assert f"in use by the worker of `deepsci up` (pid {old})" in second.stderr

        refused = deepsci(model, "up")
        assert refused.returncode == 2, refused.stderr
        assert "worker (started with other openai_base_url)" in refused.stderr and "--restart" in refused.stderr
        assert _pid(home) == old and _alive(old)  # nothing was touched

        restarted = deepsci(model, "up", "--restart")
        assert restarted.returncode == 0, restarted.stderr
        new = _pid(home)
        assert new != old and _alive(new) and not _alive(old)
        again = deepsci(model, "up")
        assert again.returncode == 0 and "already running" in again.stdout and _pid(home) == new
    finally:
        down = deepsci(base, "down")
    assert down.returncode == 0, down.stderr
    assert not any(_alive(p) for p in (old, new) if p)


def test_fingerprints_hold_no_secret_in_clear(tmp_path):
    from starter.stack import config_fingerprint

    s = Settings(home=tmp_path, openai_api_key="sk-very-secret", _env_file=None)
    text = repr(config_fingerprint(s, "worker"))
    assert "openai_api_key" in text and "sk-very-secret" not in text
    assert set(config_fingerprint(s, "temporal")) == {"temporal_address", "temporal_ui_port", "temporal_namespace",
                                                      "home"}
