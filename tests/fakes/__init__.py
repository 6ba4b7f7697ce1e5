"""Fakes for tests: loopback servers that speak the real protocols (see tests/fakes/web.py)."""
