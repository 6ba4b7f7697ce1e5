"""Slack for the `notify` activity: Block Kit gate messages (``blocks``) and the Web API calls that
post, thread and edit them (``poster``).

The bot process that turns clicks into Updates (`deepsci slack`) is a client and lives in
``starter/slack/``.
"""
