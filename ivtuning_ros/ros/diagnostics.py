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
from dataclasses import dataclass

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


# The most events one middleware callback can plausibly report: a 1920x1080 camera at
# 1 kHz for a quarter of an hour. Fast DDS has reported 2**31 - 1 (a counter overflow).
MAX_EVENT_CHANGE = 1_000_000


def plausible_change(change: int) -> int:
    """A middleware event's count change, clamped: an event means at least one
    happened; a negative or absurd change (> MAX_EVENT_CHANGE) counts as that one."""
    return change if 1 <= change <= MAX_EVENT_CHANGE else 1


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


TOTALS = {"pairs": "pairs_formed"}  # running totals of ticks other than camera arrivals
# counted drops that are normal operation, never "the reason" results stopped
NOT_A_FAILURE = ("dropped_superseded", "middleware_counter_anomaly")


class CountWindow:
    """How much each cumulative counter grew over the last `window` seconds."""

    def __init__(self, window: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self._window = window
        self._clock = clock
        self._history: deque[tuple[float, dict[str, int]]] = deque([(clock(), {})])

    def observe(self, counts: Mapping[str, int]) -> dict[str, int]:
        now = self._clock()
        self._history.append((now, dict(counts)))
        while len(self._history) > 2 and now - self._history[1][0] >= self._window:
            self._history.popleft()
        base = self._history[0][1]
        grown = {k: v - base.get(k, 0) for k, v in counts.items()}
        return {k: d for k, d in grown.items() if d > 0}


@dataclass(frozen=True)
class Health:
    """What the level needs beyond rates: recent counter growth and the thresholds."""

    recent: Mapping[str, int]  # counter -> growth over the window (CountWindow)
    window_s: float
    active_for_s: float  # since activation: "no result yet" is judged from there
    result_timeout: float
    transport_loss_warn: float


def _top_problem(recent: Mapping[str, int], reasons: Mapping[str, str]) -> str:
    problems = {k: n for k, n in recent.items() if k in reasons and k not in NOT_A_FAILURE}
    if not problems:
        return "no pair was formed and no drop was counted"
    key = max(problems, key=problems.__getitem__)
    return f"{key} x{problems[key]}: {reasons[key]}"


def _degraded_warning(recent: Mapping[str, int], reasons: Mapping[str, str]) -> str | None:
    """Both cameras arrive but results come from one: say which frames are lost and why."""
    for cam in CAMERAS:
        if recent.get(f"degraded_{cam}_only"):
            other = next(c for c in CAMERAS if c != cam)
            drops = {k: n for k, n in recent.items() if k.startswith(other) and k in reasons}
            why = _top_problem(drops, reasons) if drops else "they arrive too late to pair"
            return f"results from {cam} only: {other} frames are dropped ({why})"
    return None


def _loss_warning(health: Health) -> str | None:
    worst = None
    for cam in CAMERAS:
        lost = health.recent.get(f"{cam}_lost_in_transport", 0)
        share = lost / max(1, lost + health.recent.get(f"{cam}_received", 0))
        if lost and share > health.transport_loss_warn and (worst is None or share > worst[1]):
            worst = (cam, share)
    if worst is None:
        return None
    return (
        f"{worst[0]}: {worst[1]:.0%} of frames lost in transport over the last "
        f"{health.window_s:g} s: give every process of the graph (the camera driver too) "
        f"the Fast DDS profile config/fastdds_large_images.xml, or use "
        f"qos_reliability: reliable or the compressed transport"
    )


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
        """An arrival (a camera frame, a pair): its rate, and its running total
        (`<camera>_received`, `pairs_formed`) for loss accounting."""
        with self._lock:
            self.rates[name].tick()
            self.counts[TOTALS.get(name, f"{name}_received")] += 1

    def count(self, key: str, why: str | None = None, n: int = 1) -> None:
        """Add `n` (one addition, whatever n is) to a counter; `why` is kept as its reason."""
        with self._lock:
            self.counts[key] += n
            if why:
                self.reasons[key] = why

    def result(self, inference_s: float, latency_s: float) -> None:
        with self._lock:
            self.rates["results"].tick()
            self.counts["results_published"] += 1
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
    health: Health | None = None,
):
    """One DiagnosticStatus summarising the node; the level says what needs attention:
    ERROR when nothing arrives, or when results have stopped while input arrives (naming
    the commonest recent drop reason; `health` gives the timeout and recent counts),
    WARN while one camera is silent and results go on from the other (`lone_runners`: the
    cameras whose lone frames run) or while a camera loses more than
    `health.transport_loss_warn` of its frames in transport; "no input" only when
    nothing arrives, not even a lost-sample event."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    counts = {**snapshot["counts"], **sync_counts}  # type: ignore[dict-item]
    reasons = {**snapshot["reasons"], **sync_reasons}  # type: ignore[dict-item]
    level, message = OK, f"{lifecycle_state}: not processing"
    if lifecycle_state == "active":
        recent = health.recent if health is not None else {}
        silent = [
            s
            for s in CAMERAS
            if (snapshot[f"{s}_silent_s"] is None or snapshot[f"{s}_silent_s"] > stale_after)
            and not recent.get(f"{s}_lost_in_transport")
        ]
        alive = [s for s in CAMERAS if s not in silent]
        level = (OK, WARN, ERROR)[len(silent)]
        message = (
            f"no {' and no '.join(silent)} input for over {stale_after:g} s"
            if silent
            else "active: processing"
        )
        if len(silent) == 1 and alive[0] not in lone_runners:
            level = ERROR
            message += f": no results, lone {alive[0]} frames are dropped (on_timeout)"
        elif alive and health is not None:
            since = snapshot["results_silent_s"]
            quiet_s = health.active_for_s if since is None else min(since, health.active_for_s)
            loss = _loss_warning(health)
            if quiet_s > health.result_timeout:
                level = ERROR
                message = (
                    f"no results for {quiet_s:.0f} s while {' and '.join(alive)} input "
                    f"arrives: {_top_problem(recent, reasons)}"
                )
            elif loss is not None and level == OK:
                level, message = WARN, loss
            elif level == OK and (degraded := _degraded_warning(recent, reasons)):
                level, message = WARN, degraded

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
