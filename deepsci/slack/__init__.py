"""Approvals from Slack: Block Kit messages for gates (blocks), the notify activity's Slack calls
(poster) and the `deepsci slack` bot (bot, bridge, http).

Only ``blocks`` and ``poster`` are imported by workers; the bot modules are entry points (like
``starter/``) and import the workflow and the run helpers.
"""
