"""Checks a run's web search providers before it starts (key present, endpoint accepts a TCP
connection quickly), so a bad setting is refused up front with its name, not after a minute of retries."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from deepsci.settings import Settings

__all__ = ["provider_problems"]

# provider -> (URL setting, API key setting or None); the env names a user sets.
SETTINGS = {
    "searxng": ("searxng_url", None),
    "arxiv": ("arxiv_url", None),
    "brave": ("brave_url", "brave_api_key"),
    "tavily": ("tavily_url", "tavily_api_key"),
}
ENV = {"searxng_url": "DEEPSCI_SEARXNG_URL", "arxiv_url": "DEEPSCI_ARXIV_URL", "brave_url": "DEEPSCI_BRAVE_URL",
       "tavily_url": "DEEPSCI_TAVILY_URL", "brave_api_key": "BRAVE_API_KEY", "tavily_api_key": "TAVILY_API_KEY"}


def _reachable(url: str, timeout_s: float) -> str | None:
    """None if ``url``'s host accepts a TCP connection within ``timeout_s``, else why not."""
    parts = urlsplit(url)
    if not parts.hostname:
        return "not a URL"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def provider_problems(settings: Settings, providers: Sequence[str], timeout_s: float = 3.0) -> list[str]:
    """One line per web provider the run could not use, naming the setting to fix ([] when all are fine)."""
    problems = []
    for name in providers:
        if name not in SETTINGS:
            continue
        url_field, key_field = SETTINGS[name]
        if key_field and not getattr(settings, key_field):
            problems.append(f"{name} needs an API key: set {ENV[key_field]}")
            continue
        url = getattr(settings, url_field)
        why = _reachable(url, timeout_s)
        if why:
            problems.append(f"{name} at {url} does not answer ({why}): set {ENV[url_field]} "
                            "or use --search local")
    return problems
