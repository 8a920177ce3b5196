"""Pair RGB and thermal frames by stamp.

Matching follows message_filters' ApproximateTimeSynchronizer (Python implementation):
each stream keeps a queue of at most `queue_size` frames keyed by stamp; a new frame is
paired with the closest-stamped frame of the other stream when they lie within `slop`,
and both leave their queues. message_filters itself is not used even where it is
importable, because the additions below need to see and remove queued frames, which its
API does not offer. Two rules differ on purpose:
- the slop bound is inclusive (|difference| <= slop; message_filters' Python checks
  < slop), so slop 0 pairs exactly equal stamps (hardware-triggered cameras) instead of
  nothing;
- a frame stamped before its own stream's previous frame (out of order) is dropped and
  counted (`<camera>_backwards_stamp`), where message_filters queues it and may pair it
  after a newer frame has paired: results never go back in time.

Additions (what Autoware's fusion node learned):
- a per-stream stamp offset (seconds added to that stream's stamps before matching), for
  a camera whose driver stamps late or early;
- a timeout: a frame that found no partner within `timeout` seconds of arrival leaves
  its queue. If the other stream delivered nothing from `timeout` seconds before this
  frame's arrival until now (a camera stopped) and
  `on_timeout` lets this camera's frames run alone ("degraded": either camera;
  "degraded_<camera>_only"; "degraded_auto": the cameras the model can do with alone,
  given to the synchroniser as `standalone`), the frame is emitted alone
  (single-modality); otherwise it is dropped and counted;
- zero, repeated and backwards stamps are detected per stream, counted and dropped (or,
  for zero stamps with `zero_stamp="arrival_time"`, replaced by the arrival time); a
  stream that stays behind for CLOCK_RESET_FRAMES frames is taken to have reset its
  clock (a looping bag) and is followed from there, counted as a clock reset.

Policies (`SyncConfig.policy`):
- approximate (the default, message_filters' rule above): each frame pairs at most once.
  Cameras at different rates leave the faster one's surplus frames without a partner
  (an RGB camera at 10 Hz beside a thermal core at 8.7 Hz: about 14% of RGB frames).
- reference: every RGB frame (the one whose header the outputs carry) is paired with the
  thermal frame closest in stamp within `slop`, and a thermal frame may serve several RGB
  frames, so results come at the RGB rate (Autoware's fusion collects on a reference
  stamp the same way). An RGB frame waits only until no later thermal frame can be
  closer: one stamped at or after it has arrived, or the newest is closer than the next
  is due (the thermal stream's median stamp interval); after `timeout`, or when its
  closest thermal frame is about to time out first, it takes the closest one within slop
  that it has.

Pure Python with an injectable monotonic clock, so it is unit-tested without DDS.
Thread-safe: the node calls `add` from subscription callbacks and `poll` from a timer.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

from ivtuning_ros.types import CAMERAS

# Consecutive backwards stamps after which a stream's clock is taken to have been reset.
CLOCK_RESET_FRAMES = 3
# Thermal stamps from which the reference policy estimates the thermal frame interval.
INTERVAL_HISTORY = 9
SYNC_POLICIES = ("approximate", "reference")
# What a lone frame (its partner camera silent) does: run single-modality, from the
# cameras the model does well with alone (auto), from either camera, or from the one named;
# or be dropped
ON_TIMEOUT = ("degraded_auto", "degraded", "degraded_thermal_only", "degraded_rgb_only", "drop")
Stream = Literal["rgb", "thermal"]
_WAIT = object()  # a waiting RGB frame's closest thermal frame is not settled yet


@dataclass(frozen=True)
class SyncConfig:
    queue_size: int = 5
    slop: float = 0.05  # seconds
    timeout: float = 0.5  # seconds a lone frame waits for a partner
    on_timeout: Literal[
        "degraded_auto", "degraded", "degraded_thermal_only", "degraded_rgb_only", "drop"
    ] = "degraded_auto"
    rgb_offset: float = 0.0  # seconds added to RGB stamps before matching
    thermal_offset: float = 0.0
    zero_stamp: Literal["drop", "arrival_time"] = "drop"
    policy: Literal["approximate", "reference"] = "approximate"

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ValueError(f"sync queue_size must be >= 1, got {self.queue_size}")
        if self.slop < 0 or self.timeout <= 0:
            raise ValueError(
                f"sync needs slop >= 0 and timeout > 0, got {self.slop}, {self.timeout}"
            )
        if self.on_timeout not in ON_TIMEOUT:
            raise ValueError(
                f"on_timeout must be one of {', '.join(ON_TIMEOUT)}, got {self.on_timeout!r}"
            )
        if self.zero_stamp not in ("drop", "arrival_time"):
            raise ValueError(
                f"zero_stamp must be 'drop' or 'arrival_time', got {self.zero_stamp!r}"
            )
        if self.policy not in SYNC_POLICIES:
            raise ValueError(
                f"sync policy must be one of {', '.join(SYNC_POLICIES)}, got {self.policy!r}"
            )


@dataclass(frozen=True)
class Frame:
    stamp_ns: int  # the stamp used (header stamp, or arrival time for a zero stamp)
    key_ns: int  # stamp + stream offset: what matching compares
    arrival: float  # clock() at arrival, seconds
    msg: Any


@dataclass(frozen=True)
class SyncedPair:
    """A matched pair, or one lone frame (the other None) in degraded mode."""

    rgb: Frame | None
    thermal: Frame | None

    @property
    def reference(self) -> Frame:
        """The frame whose header the outputs carry: RGB when present."""
        return self.rgb if self.rgb is not None else self.thermal  # type: ignore[return-value]


class PairSynchronizer:
    def __init__(
        self,
        config: SyncConfig,
        callback: Callable[[SyncedPair], None],
        clock: Callable[[], float] = time.monotonic,
        stamp_now_ns: Callable[[], int] = time.time_ns,
        standalone: tuple[str, ...] = CAMERAS,
    ) -> None:
        """`standalone`: the cameras the model can run on alone (on_timeout degraded_auto)."""
        if not standalone or not set(standalone) <= set(CAMERAS):
            raise ValueError(f"standalone cameras: one or both of {CAMERAS}, got {standalone}")
        self._standalone = tuple(standalone)
        self._cfg = config
        self._callback = callback
        self._clock = clock
        self._stamp_now_ns = stamp_now_ns  # replaces zero stamps (node: its ROS clock)
        self._lock = threading.Lock()
        self._queues: dict[str, dict[int, Frame]] = {s: {} for s in CAMERAS}
        self._last_stamp: dict[str, int | None] = {s: None for s in CAMERAS}  # newest
        self._backwards: Counter[str] = Counter()  # consecutive backwards frames
        self._last_arrival: dict[str, float | None] = {s: None for s in CAMERAS}
        self._recent_thermal: deque[int] = deque(maxlen=INTERVAL_HISTORY)  # keys
        self._used_thermal: set[int] = set()  # reference policy: keys already paired
        # Counters read by diagnostics: pairs, degraded_<stream>, dropped_<reason>, ...
        self.counts: Counter[str] = Counter()
        self.last_problem: dict[str, str] = {}  # reason -> last explanation

    @property
    def config(self) -> SyncConfig:
        return self._cfg

    def set_config(self, config: SyncConfig) -> None:
        """Change settings at run time; queued frames are kept, except thermal frames
        already paired when the policy changes (they must not pair again)."""
        with self._lock:
            if config.policy != self._cfg.policy:
                for key in self._used_thermal:
                    self._queues["thermal"].pop(key, None)
                self._used_thermal.clear()
            self._cfg = config

    def lone_runners(self) -> tuple[str, ...]:
        """The cameras whose lone frames run (single-modality) under the current settings:
        with the other camera silent, results go on only from these."""
        return tuple(c for c in CAMERAS if self._runs_alone(c))

    def _runs_alone(self, stream: str) -> bool:
        on_timeout = self._cfg.on_timeout
        return on_timeout in ("degraded", f"degraded_{stream}_only") or (
            on_timeout == "degraded_auto" and stream in self._standalone
        )

    def queued(self) -> dict[str, int]:
        """Frames waiting for a partner, per stream."""
        with self._lock:
            return {s: len(q) for s, q in self._queues.items()}

    def reset(self) -> None:
        """Forget queued frames and stamp history (node deactivate/activate)."""
        with self._lock:
            for q in self._queues.values():
                q.clear()
            self._recent_thermal.clear()
            self._used_thermal.clear()
            self._last_stamp = {s: None for s in CAMERAS}
            self._last_arrival = {s: None for s in CAMERAS}

    def add(self, stream: Stream, stamp_ns: int, msg: Any) -> None:
        """Offer one frame; may invoke the callback (outside the lock) with pairs."""
        now = self._clock()
        with self._lock:
            out = self._expire(now)
            frame = self._admit(stream, stamp_ns, msg, now)
            if frame is not None:
                if self._cfg.policy == "reference":
                    out.extend(self._match_reference())
                else:
                    out.extend(self._match(stream, frame))
        for pair in out:
            self._callback(pair)

    def poll(self) -> None:
        """Apply the timeout even when no frame arrives (call from a timer)."""
        now = self._clock()
        with self._lock:
            out = self._expire(now)
        for pair in out:
            self._callback(pair)

    def _count(self, reason: str, why: str) -> None:
        self.counts[reason] += 1
        self.last_problem[reason] = why

    def _admit(self, stream: str, stamp_ns: int, msg: Any, now: float) -> Frame | None:
        cfg = self._cfg
        if stamp_ns == 0:
            if cfg.zero_stamp == "drop":
                self._count(f"{stream}_zero_stamp", f"{stream} frame with a zero stamp dropped")
                return None
            self.counts[f"{stream}_zero_stamp_replaced"] += 1
            stamp_ns = self._stamp_now_ns()
        last = self._last_stamp[stream]
        if last is not None and stamp_ns == last:
            self._count(
                f"{stream}_repeated_stamp",
                f"{stream} stamp {stamp_ns * 1e-9:.6f} s repeats the newest frame's",
            )
            return None
        if last is not None and stamp_ns < last:
            self._backwards[stream] += 1
            if self._backwards[stream] < CLOCK_RESET_FRAMES:
                self._count(
                    f"{stream}_backwards_stamp",
                    f"{stream} stamp went back {(last - stamp_ns) * 1e-9:.6f} s",
                )
                return None
            # Several in a row: the source's clock was reset (bag loop, sim restart).
            self._count(
                f"{stream}_clock_reset",
                f"{stream} stamps stayed {(last - stamp_ns) * 1e-9:.3f} s behind for "
                f"{CLOCK_RESET_FRAMES} frames: accepted as a clock reset",
            )
            self._queues[stream].clear()
            if stream == "thermal":
                self._recent_thermal.clear()
                self._used_thermal.clear()
        self._backwards[stream] = 0
        self._last_stamp[stream] = stamp_ns
        # Only usable frames count as signs of life for the other stream's timeout.
        self._last_arrival[stream] = now
        offset = cfg.rgb_offset if stream == "rgb" else cfg.thermal_offset
        frame = Frame(stamp_ns, stamp_ns + round(offset * 1e9), now, msg)
        queue = self._queues[stream]
        queue[frame.key_ns] = frame
        if stream == "thermal":
            self._recent_thermal.append(frame.key_ns)
        while len(queue) > cfg.queue_size:
            oldest = queue.pop(min(queue))
            if cfg.policy == "reference" and stream == "thermal" and self._served(oldest):
                continue
            self._count(
                f"{stream}_queue_overflow",
                f"{stream} frame left the sync queue (size {cfg.queue_size}) unmatched",
            )
        return frame

    def _match(self, stream: str, frame: Frame) -> list[SyncedPair]:
        other = "thermal" if stream == "rgb" else "rgb"
        slop_ns = round(self._cfg.slop * 1e9)
        candidates = [k for k in self._queues[other] if abs(k - frame.key_ns) <= slop_ns]
        if not candidates:
            return []
        best = min(candidates, key=lambda k: abs(k - frame.key_ns))
        partner = self._queues[other].pop(best)
        del self._queues[stream][frame.key_ns]
        self.counts["pairs"] += 1
        pair = {stream: frame, other: partner}
        return [SyncedPair(pair["rgb"], pair["thermal"])]

    def _match_reference(self) -> list[SyncedPair]:
        """Reference policy: emit every waiting RGB frame whose partner is settled."""
        out: list[SyncedPair] = []
        for key in sorted(self._queues["rgb"]):
            partner = self._reference_partner(key, waited_out=False)
            if partner is None:  # a later thermal frame came, none within slop
                out.extend(self._lone("rgb", self._queues["rgb"].pop(key)))
            elif partner is not _WAIT:
                out.append(self._pair_with(self._queues["rgb"].pop(key), partner))
        return out

    def _reference_partner(self, rgb_key: int, waited_out: bool) -> Any:
        """The key of the thermal frame closest to `rgb_key` within slop, None when no
        thermal frame can be, or _WAIT while a later one could still come closer."""
        slop_ns = round(self._cfg.slop * 1e9)
        history = self._queues["thermal"]
        below = max((k for k in history if k <= rgb_key), default=None)
        above = min((k for k in history if k > rgb_key), default=None)
        near = [k for k in (below, above) if k is not None and abs(k - rgb_key) <= slop_ns]
        best = min(near, key=lambda k: abs(k - rgb_key)) if near else None
        if above is not None or waited_out or best == rgb_key:
            return best  # thermal stamps only grow: nothing later can be closer
        recent = self._recent_thermal
        if best is None or len(recent) < 3:
            return _WAIT
        interval = statistics.median(b - a for a, b in pairwise(recent))
        next_due = best + interval
        return best if next_due - rgb_key >= rgb_key - best else _WAIT

    def _pair_with(self, frame: Frame, partner: int) -> SyncedPair:
        """Reference policy: a waiting RGB frame with the thermal frame it settled on."""
        self._used_thermal.add(partner)
        self.counts["pairs"] += 1
        return SyncedPair(frame, self._queues["thermal"][partner])

    def _expire(self, now: float) -> list[SyncedPair]:
        cfg = self._cfg
        out: list[SyncedPair] = []
        for stream in CAMERAS:  # RGB first: a waiting RGB frame may still take a thermal one
            queue = self._queues[stream]
            leaving = sorted(k for k, f in queue.items() if now - f.arrival > cfg.timeout)
            if cfg.policy == "reference" and stream == "thermal" and leaving:
                out.extend(self._settle_before_leaving(set(leaving)))
            for key in leaving:
                frame = queue.pop(key)
                if cfg.policy == "reference" and stream == "rgb":
                    partner = self._reference_partner(key, waited_out=True)
                    if partner is not None:
                        out.append(self._pair_with(frame, partner))
                        continue
                elif cfg.policy == "reference" and self._served(frame):
                    continue
                out.extend(self._lone(stream, frame))
        return out

    def _settle_before_leaving(self, leaving: set[int]) -> list[SyncedPair]:
        """Reference policy: an RGB frame still waiting for a closer thermal frame takes
        its closest one now if that one is about to leave the history (it arrived before
        the RGB frame, so its timeout comes first); otherwise the RGB frame's own timeout
        would find nothing to fall back on."""
        out = []
        for key in sorted(self._queues["rgb"]):
            partner = self._reference_partner(key, waited_out=True)
            if partner in leaving:
                out.append(self._pair_with(self._queues["rgb"].pop(key), partner))
        return out

    def _served(self, thermal: Frame) -> bool:
        """Reference policy, a thermal frame leaving the history: True when it was paired,
        or went unused while RGB frames came (each had a closer one; counted), False when
        the RGB camera is silent (the frame is a lone frame)."""
        if thermal.key_ns in self._used_thermal:
            self._used_thermal.discard(thermal.key_ns)
            return True
        if self._alive("rgb", thermal):
            self.counts["thermal_unused"] += 1
            return True
        return False

    def _alive(self, stream: str, frame: Frame) -> bool:
        """Whether `stream` delivered a usable frame within `timeout` before `frame`
        arrived, or since: a partner camera that is alive."""
        seen = self._last_arrival[stream]
        return seen is not None and seen >= frame.arrival - self._cfg.timeout

    def _lone(self, stream: str, frame: Frame) -> list[SyncedPair]:
        """A frame whose wait for a partner timed out."""
        cfg = self._cfg
        other = "thermal" if stream == "rgb" else "rgb"
        other_silent = not self._alive(other, frame)
        if other_silent and self._runs_alone(stream):
            self.counts[f"degraded_{stream}_only"] += 1
            pair = {stream: frame, other: None}
            return [SyncedPair(pair["rgb"], pair["thermal"])]
        if other_silent:
            why = f"on_timeout {cfg.on_timeout}"
            if cfg.on_timeout == "degraded_auto":
                why += f": the model runs alone only on {' or '.join(self._standalone)} frames"
            self._count(
                f"{stream}_timeout",
                f"{other} silent for over {cfg.timeout} s: lone {stream} frame dropped ({why})",
            )
        else:
            self._count(
                f"{stream}_unmatched",
                f"no {other} frame within slop {cfg.slop} s of a {stream} frame",
            )
        return []
