"""Imported by a parser child before it reads its first request: a child that is slow to start."""

import time

time.sleep(3)
