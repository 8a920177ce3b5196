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


def account(
    rgb_sent: Sequence[tuple[int, int]],
    thermal_stamps: Sequence[int],
    outputs: Sequence[OutputRecord],
    gt: GroundTruth | None,
    task: str,
    class_names: Sequence[str],
) -> ReplayAccounting:
    """rgb_sent: (header stamp ns, publish time ns) of every RGB frame handed to the node."""
    sent = {}
    for stamp, pub in rgb_sent:
        sent.setdefault(stamp, pub)  # a repeated stamp is one frame to the node
    thermal = set(thermal_stamps)
    by_stamp: dict[int, OutputRecord] = {}
    counts = dict.fromkeys(
        (
            "rgb_frames",
            "matched",
            "degraded",
            "dropped",
            "outputs",
            "thermal_only_outputs",
            "unmatched_outputs",
            "duplicate_outputs",
            "gt_missing",
            "repeated_rgb_stamps",
        ),
        0,
    )
    counts["rgb_frames"] = len(sent)
    counts["repeated_rgb_stamps"] = len(rgb_sent) - len(sent)
    counts["outputs"] = len(outputs)
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

    frames: list[FrameOutcome] = []
    task_def = get_task(task)
    scorable = task_def.replay_scorable
    metric = task_def.metric(class_names) if gt is not None and scorable else None
    with_tracks = gt is not None and gt.has_tracks and task_def.produces_boxes
    tracks = TrackingMetric() if with_tracks else None
    scored = 0
    pair_offsets = []
    for stamp, pub in sorted(sent.items(), key=lambda kv: kv[1]):
        out = by_stamp.get(stamp)
        truth = gt.get(stamp) if gt is not None else None
        if tracks is not None and truth is not None and truth.track_ids is not None:
            dets = (
                out.detections
                if out is not None and out.detections is not None
                else (Detections.empty())
            )
            tracks.update(truth.boxes, truth.track_ids, dets.boxes, dets.track_ids)
        if out is None:
            frames.append(FrameOutcome(stamp, pub, "dropped", has_gt=truth is not None))
            counts["dropped"] += 1
            continue
        status = "matched" if out.modalities == 0 else "degraded"
        counts[status] += 1
        frames.append(
            FrameOutcome(stamp, pub, status, (out.receive_ns - pub) / 1e6, truth is not None)
        )
        if status == "matched" and out.thermal_stamp_ns:
            pair_offsets.append((out.thermal_stamp_ns - stamp) / 1e9)
        if gt is None:
            continue
        if truth is None:
            counts["gt_missing"] += 1
            continue
        if metric is None:
            continue
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
    accuracy, note = None, "no ground truth given"
    if gt is not None and not scorable:
        note = f"replay scores detection and segmentation models, not {task}"
    elif metric is not None:
        if scored == 0:
            note = "no RGB frame with a result has ground truth"
        else:
            try:
                accuracy = metric.compute()
                note = f"{scored} frames with a result and ground truth"
            except ValueError as err:  # e.g. no labelled object in the scored frames
                note = f"accuracy undefined: {err}"
    tracking = tracks.compute() if tracks is not None and scored else None
    return ReplayAccounting(frames, counts, latency, sync, accuracy, note, rate, by_stamp, tracking)
