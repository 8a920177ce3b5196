"""Timing statistics and JSON reports, shared by evaluation, replay and the benchmarks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def percentiles_ms(samples_s: list[float] | np.ndarray) -> dict[str, float]:
    """Median, p95, p99, mean, min and max of durations given in seconds, in ms."""
    a = np.asarray(samples_s, dtype=np.float64) * 1e3
    if a.size == 0:
        return {"n": 0}
    return {
        "n": int(a.size),
        "p50_ms": float(np.percentile(a, 50)),
        "p95_ms": float(np.percentile(a, 95)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
    }


def time_calls(
    fn: Callable[[], object], warmup: int, runs: int, period_s: float = 0.0
) -> list[float]:
    """Wall time of `runs` calls of fn after `warmup` untimed calls, seconds each.

    period_s > 0 paces the calls (one every period_s, as frames from a camera): a CPU
    that idles between calls runs them slower than back to back (caches, clocks and
    sleeping worker threads go cold), and a latency reference must match the input rate.
    """
    for _ in range(warmup):
        fn()
    out = []
    start = time.perf_counter()
    for i in range(runs):
        wait = start + i * period_s - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def write_json(path: str | Path | None, report: dict) -> None:
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    print(f"wrote {path}")
