"""The benchmarks' worker process: ``workers.main`` with the workflow worker's sticky cache bounded by
the ``worker_max_cached_workflows`` setting (DEEPSCI_WORKER_MAX_CACHED_WORKFLOWS).

Until workers/main.py passes the setting itself, this wraps the ``Worker`` it builds; once it does,
its own value wins (``setdefault``) and this is the plain worker.
"""

from __future__ import annotations

from temporalio.worker import Worker

import workers.main as worker_main
from deepsci.settings import get_settings


def _bounded_worker(*args, **kwargs) -> Worker:
    if kwargs.get("workflows"):
        kwargs.setdefault("max_cached_workflows", get_settings().worker_max_cached_workflows)
    return Worker(*args, **kwargs)


if __name__ == "__main__":
    worker_main.Worker = _bounded_worker  # type: ignore[misc]
    worker_main.main()
