"""The Slack approvals bot (`deepsci slack`): a Temporal client like the CLI. ``bot`` (Bolt
listeners), ``gates`` (what it asks of Temporal), ``bridge`` (one asyncio loop and client for
Bolt's threads), ``serve`` (HTTP or Socket Mode). Rendering and posting are domain code in
``deepsci/slack/``."""
