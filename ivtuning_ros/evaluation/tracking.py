"""Tracking metrics over one sequence: CLEAR-MOT (MOTA) and identity (IDF1) by motmetrics.

Class-agnostic, as the tracker is: a ground-truth object and a track match when their
boxes overlap by IoU >= `iou`. Detections not (yet) confirmed as tracks are not
hypotheses, as MOT benchmarks count only a tracker's output tracks. A frame the node
dropped is a frame with no hypotheses (its objects are misses).
"""

from __future__ import annotations

import numpy as np

COUNTS = ("num_switches", "num_frames", "num_unique_objects", "mostly_tracked", "num_misses",
          "num_false_positives")  # fmt: skip
METRICS = ("mota", "motp", "idf1", *COUNTS)


class TrackingMetric:
    """Accumulates frames in time order; `compute` gives MOTA, IDF1, ID switches, ..."""

    def __init__(self, iou: float = 0.5) -> None:
        import motmetrics as mm

        self._mm = mm
        self._acc = mm.MOTAccumulator(auto_id=True)
        self.max_distance = 1.0 - iou  # motmetrics' IoU distance is 1 - IoU

    def update(
        self,
        gt_boxes: np.ndarray,
        gt_ids: np.ndarray,
        boxes: np.ndarray,
        track_ids: np.ndarray | None,
    ) -> None:
        """One frame: ground truth boxes (xyxy) and object ids; the result's boxes and
        track ids (negative = not a track; None = nothing tracked them)."""
        gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if track_ids is None:
            track_ids = np.full(len(boxes), -1)
        keep = np.asarray(track_ids) >= 0
        boxes, track_ids = boxes[keep], np.asarray(track_ids)[keep]
        dist = 1.0 - box_iou(gt_boxes, boxes)
        dist[dist > self.max_distance] = np.nan  # motmetrics: NaN = may not match
        self._acc.update(np.asarray(gt_ids).tolist(), track_ids.tolist(), dist)

    def compute(self) -> dict[str, float]:
        summary = self._mm.metrics.create().compute(self._acc, metrics=list(METRICS))
        row = summary.iloc[0]
        out = {k: float(row[k]) for k in METRICS}
        for k in COUNTS:
            out[k] = int(out[k])
        out["iou"] = round(1.0 - self.max_distance, 6)
        return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of xyxy boxes (motmetrics' own iou_matrix predates NumPy 2)."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
