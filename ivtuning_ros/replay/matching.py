"""Account for every RGB frame of a replay and score the results against ground truth.

Node outputs copy the RGB header, so an output belongs to the RGB frame with the same
header.stamp. Every RGB frame sent ends in exactly one bucket: `matched` (a fused
RGB + thermal result), `degraded` (a single-modality result) or `dropped` (no result).
Outputs that belong to no RGB frame are counted apart: thermal-only results (stamped
with a thermal frame's header) and `unmatched` ones (a stamp nobody sent: a node that
re-stamps its outputs). Accuracy is computed on every RGB frame that got a result and
has ground truth, with the training helper's metric classes (pycocotools inside), and,
when the ground truth names each box's object (`track_id`), tracking over every RGB
frame with ground truth (evaluation/tracking.py, motmetrics inside).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ivtuning_ros.evaluation.tracking import TrackingMetric
from ivtuning_ros.measure import percentiles_ms
from ivtuning_ros.replay.ground_truth import GroundTruth
from ivtuning_ros.tasks import get_task
from ivtuning_ros.types import Detections

MODALITY_NAMES = {0: "both", 1: "rgb_only", 2: "thermal_only"}


@dataclass
class OutputRecord:
    """One result of the node (from a recorded message or the offline pipeline)."""

    stamp_ns: int  # header.stamp (copied from the input)
    receive_ns: int  # when the result was received (system clock)
    modalities: int  # 0 both, 1 RGB only, 2 thermal only (DetectionArray constants)
    thermal_stamp_ns: int = 0
    inference_ms: float = float("nan")
    detections: Detections | None = None
    mask: np.ndarray | None = None  # (H, W) class ids, segmentation models


@dataclass
class FrameOutcome:
    stamp_ns: int
    publish_ns: int
    status: str  # matched | degraded | dropped
    latency_ms: float = float("nan")
    has_gt: bool = False


@dataclass
class ReplayAccounting:
    frames: list[FrameOutcome]
    counts: dict[str, int]
    latency: dict[str, float]
    sync: dict[str, float]
    accuracy: dict[str, float] | None
    accuracy_note: str
    output_rate_hz: float
    outputs_by_stamp: dict[int, OutputRecord] = field(repr=False)
    # MOTA, IDF1, ID switches, ... when the ground truth names each box's object
    tracking: dict[str, float] | None = None


COUNT_KEYS = (
    "rgb_frames", "matched", "degraded", "dropped", "outputs", "thermal_only_outputs",
    "unmatched_outputs", "duplicate_outputs", "gt_missing", "repeated_rgb_stamps",
)  # fmt: skip


def account(
    rgb_sent: Sequence[tuple[int, int]],
    thermal_stamps: Sequence[int],
    outputs: Sequence[OutputRecord],
    gt: GroundTruth | None,
    task: str,
    class_names: Sequence[str],
) -> ReplayAccounting:
    """rgb_sent: (header stamp ns, publish time ns) of every RGB frame handed to the node."""
    sent: dict[int, int] = {}
    for stamp, pub in rgb_sent:
        sent.setdefault(stamp, pub)  # a repeated stamp is one frame to the node
    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts["rgb_frames"] = len(sent)
    counts["repeated_rgb_stamps"] = len(rgb_sent) - len(sent)
    counts["outputs"] = len(outputs)
    by_stamp = _outputs_by_stamp(outputs, sent, set(thermal_stamps), counts)

    task_def = get_task(task)
    scorable = task_def.replay_scorable
    metric = task_def.metric(class_names) if gt is not None and scorable else None
    with_tracks = gt is not None and gt.has_tracks and task_def.produces_boxes
    tracks = TrackingMetric() if with_tracks else None
    frames: list[FrameOutcome] = []
    pair_offsets: list[float] = []
    scored = 0
    for stamp, pub in sorted(sent.items(), key=lambda kv: kv[1]):
        out = by_stamp.get(stamp)
        truth = gt.get(stamp) if gt is not None else None
        if tracks is not None and truth is not None and truth.track_ids is not None:
            found = out is not None and out.detections is not None
            dets = out.detections if found else Detections.empty()
            tracks.update(truth.boxes, truth.track_ids, dets.boxes, dets.track_ids)
        if out is None:
            frames.append(FrameOutcome(stamp, pub, "dropped", has_gt=truth is not None))
            counts["dropped"] += 1
            continue
        status = "matched" if out.modalities == 0 else "degraded"
        counts[status] += 1
        latency_ms = (out.receive_ns - pub) / 1e6
        frames.append(FrameOutcome(stamp, pub, status, latency_ms, truth is not None))
        if status == "matched" and out.thermal_stamp_ns:
            pair_offsets.append((out.thermal_stamp_ns - stamp) / 1e9)
        if gt is not None and truth is None:
            counts["gt_missing"] += 1
        elif truth is not None and metric is not None:
            task_def.score_replay(metric, gt, truth, out)
            scored += 1

    latency = percentiles_ms([f.latency_ms / 1e3 for f in frames if f.status != "dropped"])
    receive = sorted(o.receive_ns for o in by_stamp.values())
    rate = (len(receive) - 1) / ((receive[-1] - receive[0]) / 1e9) if len(receive) > 2 else 0.0
    offsets = np.abs(np.asarray(pair_offsets)) * 1e3
    sync = {
        "fused_fraction": counts["matched"] / max(counts["rgb_frames"], 1),
        "pair_offset_abs_mean_ms": float(offsets.mean()) if offsets.size else float("nan"),
        "pair_offset_abs_max_ms": float(offsets.max()) if offsets.size else float("nan"),
    }
    accuracy, note = _accuracy(gt is not None, scorable, metric, scored, task)
    tracking = tracks.compute() if tracks is not None and scored else None
    return ReplayAccounting(frames, counts, latency, sync, accuracy, note, rate, by_stamp, tracking)


def _outputs_by_stamp(
    outputs: Sequence[OutputRecord], sent: dict[int, int], thermal: set[int], counts: dict
) -> dict[int, OutputRecord]:
    """Each RGB frame's first result; duplicates, thermal-only and unmatched results counted."""
    by_stamp: dict[int, OutputRecord] = {}
    for out in outputs:
        if out.stamp_ns in sent:
            if out.stamp_ns in by_stamp:
                counts["duplicate_outputs"] += 1
            else:
                by_stamp[out.stamp_ns] = out
        elif out.stamp_ns in thermal and out.modalities == 2:
            counts["thermal_only_outputs"] += 1
        else:
            counts["unmatched_outputs"] += 1
    return by_stamp


def _accuracy(
    has_gt: bool, scorable: bool, metric: Any, scored: int, task: str
) -> tuple[dict[str, Any] | None, str]:
    """The accuracy figures (or None) and a note that says why or from what."""
    if not has_gt:
        return None, "no ground truth given"
    if not scorable:
        return None, f"replay scores detection and segmentation models, not {task}"
    if scored == 0:
        return None, "no RGB frame with a result has ground truth"
    try:
        return metric.compute(), f"{scored} frames with a result and ground truth"
    except ValueError as err:  # e.g. no labelled object in the scored frames
        return None, f"accuracy undefined: {err}"
