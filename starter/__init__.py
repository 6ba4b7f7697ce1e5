"""Clients that start and steer runs: the `deepsci` CLI, the embedded stack launcher."""
