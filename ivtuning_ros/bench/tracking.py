"""`ivtuning bench tracking`: what tracking adds per frame, and how well it keeps identities.

Latency: `DetectionTracker.update` (the node's per-result call) with `--boxes` objects
moving across a 1280x720 image at 10 Hz, timed per call (p50/p95/p99; target p50 <= 0.5
ms with 50 boxes), and the same with `trackers`' own 8x8 Kalman filter in place of the
node's per-coordinate one (tracking/axis_kalman.py) for comparison.

Identities: synthetic sequences (the scene generator knows which actor each box is) of
every condition, played at the RGB camera's 10 Hz through the model (`--checkpoint`,
default the node's) and the tracker, scored with motmetrics (MOTA, IDF1, ID switches;
evaluation/tracking.py). Each sequence is also played with the RGB camera dead for
`--gap` seconds in the middle (the model runs on thermal alone, as the node's degraded
mode does): identities should survive the stretch.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ivtuning_ros.bench.common import machine_info, percentiles_ms, write_json

TARGET_P50_MS = 0.5
CONDITIONS = ("clear_night", "light_fog", "dense_fog", "patchy_fog", "rain_glare")
RATE_HZ = 10.0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tracking", help="tracking: added latency per frame, MOTA / IDF1 on synthetic sequences"
    )
    p.add_argument(
        "--checkpoint", type=Path, default=None, help="model (default: models/default.safetensors)"
    )
    p.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch"))
    p.add_argument("--boxes", type=int, default=50, help="objects per frame in the latency run")
    p.add_argument("--frames", type=int, default=500, help="frames in the latency run")
    p.add_argument("--conditions", default=",".join(CONDITIONS))
    p.add_argument("--seeds", default="0,1", help="scene seeds per condition, comma-separated")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each sequence")
    p.add_argument(
        "--gap",
        type=float,
        default=1.0,
        help="seconds without the RGB camera mid-sequence (0: none)",
    )
    p.add_argument("--size", default="640x480", help="synthetic image size WxH")
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    p.set_defaults(func=run)


def tracker_latency(
    boxes: int, frames: int, seed: int = 0, library_filter: bool = False
) -> dict[str, float]:
    """Per-call time of DetectionTracker.update with `boxes` objects drifting at 10 Hz;
    `library_filter`: with `trackers`' own 8x8 Kalman filter instead of the node's."""
    from trackers.utils.state_representations import XYXYStateEstimator

    from ivtuning_ros.tracking import DetectionTracker, TrackingConfig
    from ivtuning_ros.types import Detections

    rng = np.random.default_rng(seed)
    size = rng.uniform(20, 120, (boxes, 2))
    pos = rng.uniform([0, 0], [1280 - 120, 720 - 120], (boxes, 2))
    vel = rng.uniform(-4, 4, (boxes, 2))
    tracker = DetectionTracker(TrackingConfig(), XYXYStateEstimator if library_filter else None)
    times = []
    for f in range(frames):
        xy = pos + vel * f + rng.normal(0, 1.0, (boxes, 2))
        dets = Detections(
            np.concatenate([xy, xy + size], axis=1).astype(np.float32),
            rng.uniform(0.3, 1.0, boxes).astype(np.float32),
            rng.integers(0, 3, boxes).astype(np.int64),
        )
        t0 = time.perf_counter()
        tracker.update(dets, f / RATE_HZ)
        times.append(time.perf_counter() - t0)
    return {"boxes": boxes, "frames": frames, **percentiles_ms(times[10:])}


def sequence_scores(
    predictor,
    class_names,
    condition: str,
    seed: int,
    seconds: float,
    size: tuple[int, int],
    gap: tuple[float, float] | None,
) -> dict:
    """Track one synthetic sequence through the model; motmetrics' summary."""
    from ivtuning_ros.data.classes import match_classes
    from ivtuning_ros.data.synthetic import SceneSequence
    from ivtuning_ros.evaluation.tracking import TrackingMetric
    from ivtuning_ros.tracking import DetectionTracker, TrackingConfig

    scene = SceneSequence(condition, seed, size, thermal_bits=8, thermal_optics="varied")
    cmap = match_classes(scene.class_names, class_names, exact=False, what="synthetic scenes")
    tracker, metric = DetectionTracker(TrackingConfig()), TrackingMetric()
    for i in range(int(seconds * RATE_HZ)):
        t = i / RATE_HZ
        sample = cmap.apply(scene.frame(t))
        rgb = None if gap is not None and gap[0] <= t < gap[1] else sample.rgb
        dets = predictor.predict(rgb, sample.thermal).detections
        tracked = tracker.update(dets, t)
        metric.update(sample.boxes, sample.instance_ids, tracked.boxes, tracked.track_ids)
    return metric.compute()


def run(args: argparse.Namespace) -> int:
    from ivtuning_ros.engine.config import EngineConfig
    from ivtuning_ros.engine.engine import load_engine
    from ivtuning_ros.engine.predictor import Predictor
    from ivtuning_ros.paths import models_dir
    from ivtuning_ros.ros.params import default_values, node_config

    latency = tracker_latency(args.boxes, args.frames)
    library = tracker_latency(args.boxes, args.frames, library_filter=True)
    for label, lat in (("tracker update", latency), ("  with trackers' 8x8 filter", library)):
        print(
            f"{label}, {args.boxes} boxes: p50 {lat['p50_ms']:.3f} ms, "
            f"p95 {lat['p95_ms']:.3f}, p99 {lat['p99_ms']:.3f}"
        )
    print(f"(target p50 <= {TARGET_P50_MS} ms)")
    checkpoint = args.checkpoint or models_dir() / "default.safetensors"
    w, _, h = args.size.lower().partition("x")
    size = (int(w), int(h))
    mid = args.seconds / 2
    gap = (mid - args.gap / 2, mid + args.gap / 2) if args.gap > 0 else None
    rows = []
    engine = load_engine(checkpoint, EngineConfig(backend=args.backend, warmup_runs=1))
    with engine:
        defaults = node_config(default_values())
        predictor = Predictor(
            engine, defaults.score_threshold_for(engine.info.score_threshold), defaults.nms_iou
        )
        runs = [
            (c, int(s), g)
            for c in args.conditions.split(",")
            for s in args.seeds.split(",")
            for g in ((None, gap) if gap else (None,))
        ]
        for condition, seed, g in tqdm(runs, desc="bench tracking", unit="sequence"):
            scores = sequence_scores(
                predictor, engine.class_names, condition, seed, args.seconds, size, g
            )
            rows.append(
                {
                    "condition": condition,
                    "seed": seed,
                    "rgb_gap_s": list(g) if g else None,
                    **scores,
                }
            )
    summary = {}
    for label, want_gap in (("both cameras", False), ("RGB camera dead mid-sequence", True)):
        part = [r for r in rows if (r["rgb_gap_s"] is not None) == want_gap]
        if part:
            summary[label] = {
                "sequences": len(part),
                "mota_mean": float(np.mean([r["mota"] for r in part])),
                "idf1_mean": float(np.mean([r["idf1"] for r in part])),
                "id_switches": int(sum(r["num_switches"] for r in part)),
                "objects": int(sum(r["num_unique_objects"] for r in part)),
            }
    print(f"{'sequences':<32} {'n':>3} {'MOTA':>6} {'IDF1':>6} {'ID sw':>6} {'objects':>8}")
    for label, s in summary.items():
        print(
            f"{label:<32} {s['sequences']:>3} {s['mota_mean']:>6.3f} {s['idf1_mean']:>6.3f} "
            f"{s['id_switches']:>6} {s['objects']:>8}"
        )
    report = {
        "command": "ivtuning bench tracking",
        "args": {k: str(v) for k, v in vars(args).items() if k != "func"},
        "checkpoint": str(checkpoint),
        "latency": latency,
        "latency_library_filter": library,
        "latency_target_p50_ms": TARGET_P50_MS,
        "latency_target_met": latency["p50_ms"] <= TARGET_P50_MS,
        "summary": summary,
        "sequences": rows,
        "machine": machine_info(),
    }
    if args.json:
        write_json(args.json, report)
    return 0
