#!/usr/bin/env python3
"""Draw one PNG per benchmark from the JSON lines ``make bench`` wrote (docs/bench/*.json).

    .venv/bin/python bench/plot.py docs/bench

Needs matplotlib (the ``bench`` extra: ``make bench`` installs it). A missing JSON file skips its plot.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _load(folder: Path, name: str) -> dict | None:
    path = folder / f"{name}.json"
    if not path.exists():
        return None
    lines = path.read_text().strip().splitlines()
    return json.loads(lines[-1]) if lines else None


def _save(fig, folder: Path, name: str, data: dict) -> None:
    load = ", ".join(str(x) for x in data.get("loadavg", []))
    fig.text(0.99, 0.01, f"load average {load} on {data.get('cpus')} CPUs", ha="right", fontsize=7, color="gray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(folder / f"{name}.png", dpi=110)
    plt.close(fig)
    sys.stderr.write(f"wrote {folder / f'{name}.png'}\n")


def overhead(folder: Path) -> None:
    d = _load(folder, "overhead")
    if not d:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    rounds = range(1, len(d["plain_round_s"]) + 1)
    a.plot(rounds, d["plain_round_s"], "o-", label="plain asyncio")
    a.plot(rounds, d["temporal_round_s"], "s-", label="Temporal workflow")
    a.set(xlabel="round", ylabel="seconds per round", ylim=(0, None),
          title=f"same steps, warm caches: ratio {d['ratio']}x")
    a.legend()
    br = d["breakdown"]
    parts = {"activity task queue": br["activity_queue_s_per_run"], "workflow tasks": br["wft_s_per_run"],
             "payload conversion": br["payload_conversion_ms_per_run"] / 1000}
    b.barh(list(parts), list(parts.values()), color=["tab:orange", "tab:red", "tab:green"])
    b.axvline(br["overhead_s_per_run"], color="k", ls="--", label=f"overhead per run {br['overhead_s_per_run']} s")
    b.set(xlabel="seconds per run (summed over concurrent tasks)", title="where the extra time goes")
    b.legend(fontsize=8)
    _save(fig, folder, "overhead", d)


def parked(folder: Path) -> None:
    runs = {k: _load(folder, f"parked-{k}") for k in ("bounded", "stock")}
    runs = {k: v for k, v in runs.items() if v}
    if not runs:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels, x = [], 0
    for k, d in runs.items():
        cache = "SDK default 1000" if d["max_cached"] < 0 else str(d["max_cached"])
        labels.append(f"{k}\n(cache {cache})")
        a.bar([x - 0.3, x - 0.1], [d["worker_idle_rss_mb"], d["worker_rss_mb"]], 0.2,
              color=["lightsteelblue", "tab:blue"])
        a.bar([x + 0.1, x + 0.3], [d["server_idle_rss_mb"], d["server_rss_mb"]], 0.2,
              color=["moccasin", "tab:orange"])
        b.bar([x - 0.25, x, x + 0.25], [d.get("resume_single_p50_s") or 0, d["resume_p50_s"], d["resume_p95_s"]],
              0.25, color=["lightgreen", "tab:green", "darkgreen"])
        x += 1
    n = next(iter(runs.values()))["runs"]
    a.set_xticks(range(len(labels)), labels)
    a.set(ylabel="RSS (MB)", title=f"{n} runs parked: worker (blue), server (orange); idle, parked")
    b.set_xticks(range(len(labels)), labels)
    b.axhline(1.0, color="k", ls="--", lw=0.8)
    b.set(ylabel="seconds", title="decision -> resumed: lone p50; bulk p50, p95 (goal 1 s)")
    _save(fig, folder, "parked", next(iter(runs.values())))


def embedding(folder: Path) -> None:
    d = _load(folder, "embedding")
    if not d:
        return
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, name in zip(axes, ("local", "openai"), strict=True):
        ax.bar(["batched", "one by one"], [d[f"{name}_batched_ms_per_chunk"], d[f"{name}_single_ms_per_chunk"]],
               color=["tab:blue", "tab:gray"])
        ax.set(ylabel="ms per chunk", title=f"{name}: {d[f'{name}_ratio']}x faster batched ({d['chunks']} chunks)")
    _save(fig, folder, "embedding", d)


def chaos(folder: Path) -> None:
    d = _load(folder, "chaos")
    if not d:
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
    keys = ["recovery_s_p50", "recovery_s_p95", "recovery_s_max"]
    ax.bar([k.removeprefix("recovery_s_") for k in keys], [d.get(k) or 0 for k in keys], color="tab:purple")
    ax.set(ylabel="seconds", title=f"SIGKILL -> run progresses again ({d['trials']} trials)")
    _save(fig, folder, "chaos", d)


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "docs/bench")
    for plot in (overhead, parked, embedding, chaos):
        plot(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
