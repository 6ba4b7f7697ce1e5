"""Running the bot: HTTP mode (Slack POSTs to a public URL; a threaded WSGI server around Bolt's
adapter) or Socket Mode (the bot dials out to Slack with an app token; nothing to expose)."""

from __future__ import annotations

import logging
import signal

from slack_bolt import App

from deepsci.observe.tracing import flush_tracing, setup_tracing
from deepsci.settings import Settings
from starter.slack.httpd import Limits, SlackHTTPServer

__all__ = ["missing_settings", "http_server", "run_bot", "EVENTS_PATH", "DEFAULT_HOST", "Limits"]

log = logging.getLogger("deepsci.slack")

EVENTS_PATH = "/slack/events"
DEFAULT_HOST = "127.0.0.1"  # behind a TLS proxy on the same host; `--host 0.0.0.0` to expose it


def missing_settings(settings: Settings, http: bool) -> list[str]:
    """What the chosen mode needs and is not set, as lines to show the operator."""
    missing = []
    if not settings.slack_bot_token:
        missing.append("SLACK_BOT_TOKEN (the bot token, xoxb-...)")
    if http and not settings.slack_signing_secret:
        missing.append("SLACK_SIGNING_SECRET (HTTP mode refuses unsigned requests; Basic Information > "
                       "App Credentials)")
    if not http and not settings.slack_app_token:
        missing.append("SLACK_APP_TOKEN (an app-level token, xapp-..., with connections:write) for Socket "
                       "Mode; or run `deepsci slack --http --port 3000` behind a public URL")
    return missing


def http_server(app: App, signing_secret: str, host: str = DEFAULT_HOST, port: int = 3000, path: str = EVENTS_PATH,
                limits: Limits = Limits()) -> SlackHTTPServer:
    """Bound now, served by ``serve_forever()``; Slack's Request URL is ``http(s)://<host>:<port><path>``.
    The signature is checked (and replays refused) here, on the raw body, before Bolt parses it."""
    return SlackHTTPServer(app, host, port, path, signing_secret, limits)


def run_bot(settings: Settings, http: bool, host: str = DEFAULT_HOST, port: int = 3000,
            path: str = EVENTS_PATH) -> None:
    """Serve until SIGINT/SIGTERM. The caller leaves with os._exit (grpcio and finalization)."""
    from starter.slack.bot import build_app
    from starter.slack.bridge import TemporalBridge

    def stop(signum: int, _frame) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    # `/research` starts each run under a root span of its own trace (starter.runs.start_or_attach;
    # the bridge's client carries the trace context into the workflow): spans go where the CLI's do.
    setup_tracing(settings, "deepsci-slack")
    bridge = TemporalBridge(settings).start()
    try:
        app = build_app(settings, bridge)
        if http:
            server = http_server(app, settings.slack_signing_secret or "", host, port, path)
            log.info("slack bot: HTTP mode on http://%s:%d%s (Temporal %s)", host, server.server_port, path,
                     settings.temporal_address)
            try:
                server.serve_forever(poll_interval=0.5)
            finally:
                server.server_close()
        else:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            log.info("slack bot: Socket Mode (Temporal %s)", settings.temporal_address)
            handler = SocketModeHandler(app, settings.slack_app_token)
            try:
                handler.start()
            finally:
                handler.close()
    except KeyboardInterrupt:
        log.info("slack bot: stopping")
    finally:
        bridge.close()
        flush_tracing()  # the caller skips the provider's exit hook (os._exit)
