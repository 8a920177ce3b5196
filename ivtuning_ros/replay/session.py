"""`ivtuning replay`: a bag through the node (over DDS, or offline), scored and reported.

DDS mode (live.py) plays the bag to the real node and records its outputs; offline mode
(offline.py) runs the node's synchroniser, conversion and Predictor on the bag directly.
Both hand back a `RunData`; `run_replay` turns it into the accounting, the terminal
table, report.json, latency plots and overlay frames.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from rclpy.serialization import deserialize_message

from ivtuning_ros.replay import plots
from ivtuning_ros.replay.bagio import CAMERA_TYPES, hash_bag, open_stream
from ivtuning_ros.replay.ground_truth import GT_FILENAME, GroundTruth
from ivtuning_ros.replay.matching import account
from ivtuning_ros.replay.options import (
    ReplayOptions,
    apply_transports,
    node_parameters,
    topic_candidates,
)
from ivtuning_ros.replay.report import file_hash, library_versions, render_table
from ivtuning_ros.tasks import get_task
from ivtuning_ros.timestamps import stamp_ns
from ivtuning_ros.types import CAMERAS


def rgb_not_seen_by_sync(rgb_frames: int, counters: dict[str, Any]) -> int:
    """RGB frames the node's synchroniser never saw (lost in DDS transport or overwritten
    in the node's keep-last input queue): those sent minus those the node's counters
    account for (paired, degraded, or dropped by the synchroniser or input checks)."""
    seen = int(counters.get("pairs", 0)) + int(counters.get("degraded_rgb_only", 0))
    seen += sum(
        int(v)
        for k, v in counters.items()
        if k.startswith("rgb_") and k != "rgb_zero_stamp_replaced" and isinstance(v, int)
    )
    return max(rgb_frames - seen, 0)


def _ground_truth(opts: ReplayOptions) -> GroundTruth | None:
    if opts.gt is not None:
        return GroundTruth(opts.gt)
    default = Path(opts.bag) / GT_FILENAME
    return GroundTruth(default) if default.is_file() else None


def run_replay(opts: ReplayOptions) -> dict[str, Any]:
    """Run one replay and write OUT/report.json, plots and overlays; returns the report."""
    values, topics = node_parameters(opts)
    gt = _ground_truth(opts)
    opts.out.mkdir(parents=True, exist_ok=True)
    if (opts.out / "output_bag").exists() and not opts.offline:
        raise FileExistsError(f"{opts.out / 'output_bag'} exists: choose an empty --out folder")
    from ivtuning_ros.replay.live import replay_dds
    from ivtuning_ros.replay.offline import replay_offline

    types = {r: CAMERA_TYPES for r in CAMERAS}
    with open_stream(opts.bag, topic_candidates(opts, topics), types) as stream:
        topics = {r: c.topic for r, c in stream.connections.items()}
        apply_transports(values, {r: (c.topic, c.msgtype) for r, c in stream.connections.items()})
        run = (
            replay_offline(stream, opts, values)
            if opts.offline
            else replay_dds(stream, opts, values)
        )
        bag_error, bag_note, storage, held = (
            stream.error,
            stream.note,
            stream.storage,
            stream.topics,
        )
    names = run.class_names or (
        tuple(gt.class_names[i] for i in sorted(gt.class_names)) if gt else ()
    )
    if gt is not None:
        gt.bind_stamps([stamp for stamp, _ in run.rgb_sent])
        if get_task(run.task).class_matching == "by_name":
            gt.for_model(names)  # category ids mapped to the model's classes by name
    acc = account(run.rgb_sent, run.thermal_stamps, run.outputs, gt, run.task, names)
    if run.node_counters:
        acc.counts["rgb_not_seen_by_sync"] = rgb_not_seen_by_sync(
            acc.counts["rgb_frames"], run.node_counters
        )
    report: dict[str, Any] = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": "offline" if opts.offline else "dds",
        "rate": opts.rate,
        "input": _input_facts(opts, storage, topics, held, gt, bag_error, bag_note),
        "config": {
            "params_file": str(opts.params) if opts.params else None,
            "overrides": opts.overrides,
            "node_parameters": values,
        },
        "versions": library_versions(),
        "model": {**run.model, "task": run.task, "class_names": list(names)},
        "counts": acc.counts,
        "accuracy": acc.accuracy,
        "accuracy_note": acc.accuracy_note,
        "tracking": acc.tracking,
        "latency": acc.latency,
        "latency_definition": (
            "result receive time - RGB publish time"
            if not opts.offline
            else "decode + inference + postprocess time per frame"
        ),
        "output_rate_hz": acc.output_rate_hz,
        "sync": acc.sync,
        "node_counters": run.node_counters,
        **run.extra,
        "frames": [_frame_row(f) for f in acc.frames],
    }
    title = f"{Path(opts.bag).name}: {report['mode']}" + (
        "" if opts.offline else f" x{opts.rate:g}"
    )
    ylabel = "processing time [ms]" if opts.offline else "end-to-end latency [ms]"
    files = [str(p) for p in plots.latency_plots(acc, opts.out, title, ylabel)]
    files += [str(p) for p in _overlays(opts, topics, acc, gt, names)]
    report["files"] = files
    (opts.out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    report["table"] = render_table(report)
    return report


def _input_facts(opts, storage, topics, held, gt, error, note) -> dict[str, Any]:
    """What was replayed: the bag (hash, storage, topics) and its ground truth."""
    return {
        "bag": str(opts.bag),
        "bag_sha256": hash_bag(opts.bag),
        "storage": storage,
        "topics": topics,
        "topics_in_bag": {k: {"type": t, "count": c} for k, (t, c) in held.items()},
        "ground_truth": str(gt.path) if gt else None,
        "ground_truth_sha256": file_hash(gt.path) if gt else None,
        "ground_truth_stamps": gt.stamp_source if gt else None,
        "ground_truth_unscored_classes": list(gt.unscored_classes) if gt else [],
        "error": error,
        "note": note,
    }


def _frame_row(f) -> dict[str, Any]:
    latency = None if f.status == "dropped" else round(f.latency_ms, 3)
    return {"stamp_ns": f.stamp_ns, "status": f.status, "latency_ms": latency, "has_gt": f.has_gt}


def _overlays(opts, topics, acc, gt, names) -> list[Path]:
    """Overlay PNGs of a few frames (results in colour, ground truth in white) + a montage."""
    from ivtuning_ros.replay.dds import message_class
    from ivtuning_ros.ros.codec import ImageDecodeError, image_to_rgb

    wanted = set(plots.pick_overlay_frames(acc.frames, opts.overlays))
    if not wanted:
        return []
    folder = opts.out / "overlays"
    folder.mkdir(exist_ok=True)
    paths, tiles = [], []
    with open_stream(opts.bag, {"rgb": topics["rgb"]}, {"rgb": CAMERA_TYPES}) as stream:
        msg_type = message_class(stream.connections["rgb"].msgtype)
        for _, _, raw in stream.messages():
            msg = deserialize_message(raw, msg_type)
            stamp = stamp_ns(msg.header.stamp)
            if stamp not in wanted:
                continue
            try:
                rgb = image_to_rgb(msg)
            except ImageDecodeError:
                continue
            out = acc.outputs_by_stamp[stamp]
            truth = gt.get(stamp) if gt is not None else None
            banner = {0: "", 1: "RGB ONLY", 2: "THERMAL ONLY"}[out.modalities]
            image = plots.overlay_frame(
                rgb, names, out.detections, out.mask, truth.boxes if truth else None, banner
            )
            paths.append(folder / f"frame_{len(paths):02d}_{stamp}.png")
            plots.save_rgb_png(paths[-1], image)
            tiles.append(image)
    if tiles:
        paths.append(opts.out / "overlay_montage.png")
        plots.save_rgb_png(paths[-1], plots.montage(tiles, columns=3))
    return paths
