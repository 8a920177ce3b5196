"""Persistent object identities across frames: ByteTrack from Roboflow's `trackers`.

The node, offline replay and `ivtuning bench tracking` call the same `DetectionTracker`.
It is fed each result's detections with the result's stamp, so a frame rate that varies
(a camera that drops frames, a single-camera stretch run on the fallback model) only
widens the Kalman step: a track lives on for `buffer_s` seconds without a detection and
keeps its identity through any stretch shorter than that. Identities are >= 0; a
detection not yet confirmed as a track (ByteTrack confirms after two consecutive
matches) gets `UNTRACKED`.

The node publishes only detections above its score threshold, so every detection the
tracker sees may start a track: ByteTrack's second, low-score association stage has
nothing to do here and its thresholds are set to 0. Association is class-agnostic (a
box whose class flickers between car and bicycle keeps its track).

The library's Kalman filter is general (8x8 matrix products per track per frame: 1.7 ms
at 50 boxes); `AxisKalmanEstimator` computes the same filter per coordinate, which
ByteTrack's noise settings allow, and is plugged in through the library's
`state_estimator_class` (tracking/axis_kalman.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ivtuning_ros.types import Detections

UNTRACKED = -1
JUMP_BACK_S = 1.0  # stamps further back than this restart tracking (DetectionTracker.update)


@dataclass(frozen=True)
class TrackingConfig:
    """The node's `tracking`, `track_buffer` and `track_match_iou` parameters."""

    enabled: bool = True
    buffer_s: float = 1.0  # a lost track is kept (and can be re-found) this long
    match_iou: float = 0.2  # least IoU between a track's predicted box and a detection

    def __post_init__(self) -> None:
        if not (math.isfinite(self.buffer_s) and self.buffer_s >= 0):
            raise ValueError(f"track_buffer must be >= 0 seconds, got {self.buffer_s}")
        if not 0.0 < self.match_iou < 1.0:
            raise ValueError(f"track_match_iou must lie in (0, 1), got {self.match_iou}")


class DetectionTracker:
    """ByteTrack over `Detections`, one instance per camera rig (not thread-safe)."""

    def __init__(self, config: TrackingConfig, estimator_class: type | None = None) -> None:
        """`estimator_class`: the Kalman filter per track (a `trackers` state estimator);
        default `AxisKalmanEstimator`. `bench tracking` times the library's own beside it."""
        # imported here: `trackers` pulls in supervision (~1 s), needed only when tracking
        import supervision
        from trackers import ByteTrackTracker

        from ivtuning_ros.tracking.axis_kalman import AxisKalmanEstimator

        self._sv = supervision
        self.config = config
        # ByteTrack counts its buffer in 30 fps frames; with stamps given it keeps a lost
        # track for lost_track_buffer / 30 seconds.
        self._tracker = ByteTrackTracker(
            lost_track_buffer=max(1, round(config.buffer_s * 30.0)),
            frame_rate=30.0,
            track_activation_threshold=0.0,
            minimum_iou_threshold=config.match_iou,
            high_conf_det_threshold=0.0,
            state_estimator_class=estimator_class or AxisKalmanEstimator,
        )
        self._last_stamp_s: float | None = None

    def update(self, detections: Detections, stamp_s: float) -> Detections:
        """`detections` with `track_ids` set (same order). A stamp a little older than
        the last one (a pair out of order) gets no identities and leaves the tracks as
        they are; one more than `JUMP_BACK_S` older (a bag replayed in a loop, a
        simulator reset) starts the tracks afresh."""
        if self._last_stamp_s is not None and stamp_s < self._last_stamp_s:
            if self._last_stamp_s - stamp_s <= JUMP_BACK_S:
                return replace(detections, track_ids=np.full(len(detections), UNTRACKED))
            self.reset()
        self._last_stamp_s = stamp_s
        n = len(detections)
        boxes = np.asarray(detections.boxes, np.float32).reshape(n, 4)
        det = self._sv.Detections(
            xyxy=boxes,
            confidence=np.asarray(detections.scores, np.float32),
            class_id=np.asarray(detections.class_ids, np.int64),
            data={"index": np.arange(n)},
        )
        out = self._tracker.update(det, timestamp=float(stamp_s))
        ids = np.full(n, UNTRACKED, np.int64)
        if len(out):
            ids[np.asarray(out.data["index"], np.int64)] = np.asarray(out.tracker_id, np.int64)
        return replace(detections, track_ids=ids)

    def reset(self) -> None:
        """Forget every track (identities restart at 0), e.g. after a time jump."""
        self._tracker.reset()
        self._last_stamp_s = None
