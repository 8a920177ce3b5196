"""What the node reports on /diagnostics: rates, drops with reasons, timing percentiles.

`NodeStats` is filled from the executor (arrivals, sync) and the worker thread (results)
and read by a timer that publishes `diagnostic_msgs/DiagnosticArray`. Rates and
percentiles are over a sliding window, so they describe the node now, not since start.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping

import numpy as np

from ivtuning_ros.types import CAMERAS

OK, WARN, ERROR = b"\x00", b"\x01", b"\x02"  # diagnostic_msgs/DiagnosticStatus levels


class RateMeter:
    """Events per second over the last `window` seconds."""

    def __init__(self, window: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self._window = window
        self._clock = clock
        self._times: deque[float] = deque()
        self._last: float | None = None  # kept after the window forgets it

    def tick(self) -> None:
        self._last = self._clock()
        self._times.append(self._last)

    def rate(self) -> float:
        now = self._clock()
        while self._times and now - self._times[0] > self._window:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], self._times[-1] - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def jitter(self) -> float | None:
        """Standard deviation of the intervals between events in the window, seconds."""
        self.rate()  # drops events that left the window
        if len(self._times) < 3:
            return None
        return float(np.std(np.diff(np.asarray(self._times))))

    def since_last(self) -> float | None:
        """Seconds since the last event; None if there never was one."""
        return None if self._last is None else self._clock() - self._last


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


class NodeStats:
    """Thread-safe counters, rates and timing windows for one node."""

    def __init__(self, window: int = 200, clock: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self.rates = {name: RateMeter(clock=clock) for name in (*CAMERAS, "pairs", "results")}
        self.counts: Counter[str] = Counter()
        self.reasons: dict[str, str] = {}  # count key -> last explanation
        self.inference_s: deque[float] = deque(maxlen=window)
        self.latency_s: deque[float] = deque(maxlen=window)

    def tick(self, name: str) -> None:
        with self._lock:
            self.rates[name].tick()

    def count(self, key: str, why: str | None = None) -> None:
        with self._lock:
            self.counts[key] += 1
            if why:
                self.reasons[key] = why

    def result(self, inference_s: float, latency_s: float) -> None:
        with self._lock:
            self.rates["results"].tick()
            self.inference_s.append(inference_s)
            self.latency_s.append(latency_s)

    def snapshot(self) -> dict[str, object]:
        """Plain numbers for the diagnostics message and the tests."""
        with self._lock:
            out: dict[str, object] = {f"{k}_rate_hz": m.rate() for k, m in self.rates.items()}
            out.update({f"{k}_silent_s": m.since_last() for k, m in self.rates.items()})
            out.update({f"{k}_jitter_ms": _ms(m.jitter()) for k, m in self.rates.items()})
            out["counts"] = dict(self.counts)
            out["reasons"] = dict(self.reasons)
            for name, window in (("inference", self.inference_s), ("latency", self.latency_s)):
                a = np.asarray(window, np.float64) * 1e3
                out[f"{name}_p50_ms"] = float(np.percentile(a, 50)) if a.size else None
                out[f"{name}_p95_ms"] = float(np.percentile(a, 95)) if a.size else None
            return out


def build_status(
    name: str,
    hardware_id: str,
    lifecycle_state: str,
    snapshot: Mapping[str, object],
    sync_counts: Mapping[str, int],
    sync_reasons: Mapping[str, str],
    stale_after: float,
    lone_runners: tuple[str, ...] = CAMERAS,
):
    """One DiagnosticStatus summarising the node; the level says what needs attention:
    WARN while one camera is silent and results go on from the other (`lone_runners`: the
    cameras whose lone frames run), ERROR when results have stopped."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    counts = {**snapshot["counts"], **sync_counts}  # type: ignore[dict-item]
    reasons = {**snapshot["reasons"], **sync_reasons}  # type: ignore[dict-item]
    level, message = OK, f"{lifecycle_state}: not processing"
    if lifecycle_state == "active":
        silent = [
            s
            for s in CAMERAS
            if snapshot[f"{s}_silent_s"] is None or snapshot[f"{s}_silent_s"] > stale_after
        ]
        level = (OK, WARN, ERROR)[len(silent)]
        message = (
            f"no {' and no '.join(silent)} input for over {stale_after:g} s"
            if silent
            else "active: processing"
        )
        alive = [s for s in CAMERAS if s not in silent]
        if len(silent) == 1 and alive[0] not in lone_runners:
            level = ERROR
            message += f": no results, lone {alive[0]} frames are dropped (on_timeout)"

    kv = []

    def add(key: str, value: object) -> None:
        if isinstance(value, float):
            value = f"{value:.2f}"
        kv.append(KeyValue(key=key, value="" if value is None else str(value)))

    for k in (*CAMERAS, "pairs", "results"):
        add(f"{k} rate (Hz)", snapshot[f"{k}_rate_hz"])
        add(f"{k} jitter (ms)", snapshot[f"{k}_jitter_ms"])
    for k in ("inference", "latency"):
        add(f"{k} p50 (ms)", snapshot[f"{k}_p50_ms"])
        add(f"{k} p95 (ms)", snapshot[f"{k}_p95_ms"])
    for k in sorted(counts):
        add(f"count {k}", counts[k])
    for k in sorted(reasons):
        add(f"reason {k}", reasons[k])
    return DiagnosticStatus(
        level=level, name=name, message=message, hardware_id=hardware_id, values=kv
    )
