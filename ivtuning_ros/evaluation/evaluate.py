"""Evaluate a checkpoint on a labelled dataset through the node's own prediction path.

Every frame goes through `engine.predictor.Predictor` (preprocess -> engine ->
postprocess), so the figures describe exactly what the ROS node would publish; metrics
are computed in ORIGINAL image pixels against the dataset's own labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ivtuning_ros.data.classes import Relabeled, match_classes
from ivtuning_ros.engine.predictor import Predictor
from ivtuning_ros.evaluation.overlays import render_overlay, write_overlay
from ivtuning_ros.measure import percentiles_ms
from ivtuning_ros.postprocess import DEFAULT_SCORE_THRESHOLD
from ivtuning_ros.tasks import get_task
from ivtuning_ros.types import CAMERAS, RGBTSample

# Boxes drawn on overlays: a usable operating point, not the near-zero cut AP needs.
OVERLAY_SCORE = DEFAULT_SCORE_THRESHOLD


def spread_indices(count: int, wanted: int) -> list[int]:
    """`wanted` indices spread evenly over range(count), first and last included, sorted
    (overlay frames here; calibration pairs in `ivtuning calibrate`)."""
    if wanted <= 0 or count == 0:
        return []
    return sorted({int(i) for i in np.linspace(0, count - 1, min(wanted, count)).round()})


def evaluate_predictor(
    predictor: Predictor,
    samples: Sequence[RGBTSample],
    overlays: int = 0,
    overlay_dir: str | Path | None = None,
    progress: bool = True,
    missing: str | None = None,
) -> dict[str, Any]:
    """Predict every sample, score against its labels; returns metrics, counts and latency.

    Set the predictor's score threshold low (e.g. 0.001) for detection: AP integrates over
    all scores. Overlays (PNG, RGB | thermal) are written for `overlays` evenly spread frames.
    `missing` ("rgb" or "thermal") withholds that camera from every frame, as the node's
    degraded mode does when it falls silent: what a camera failure costs.
    """
    engine = predictor.engine
    task, names = engine.task, engine.class_names
    task_def = get_task(task)
    metric = task_def.metric(names)
    classes: dict[str, list[str]] = {}
    if task_def.class_matching == "by_name" and getattr(samples, "class_names", None):
        # ground truth and model may number the same classes differently: match by name
        cmap = match_classes(samples.class_names, names, exact=False, what="ground truth")
        samples = Relabeled(samples, cmap)
        classes = {
            "unscored_ground_truth": list(cmap.unmatched_data),
            "without_ground_truth": list(cmap.unmatched_model),
        }
    group_of = getattr(samples, "group_of", None)
    by_group: dict[str, Any] = {}
    if len(samples) == 0:
        raise ValueError("the evaluation split holds no samples")
    if overlays and overlay_dir is None:
        raise ValueError("overlays requested without an overlay folder")
    if missing not in (None, *CAMERAS):
        raise ValueError(f"missing must be one of {', '.join(CAMERAS)}, got {missing!r}")
    chosen = set(spread_indices(len(samples), overlays))
    written: list[str] = []
    latencies: list[float] = []
    for i in tqdm(range(len(samples)), desc=f"eval {task}", unit="img", disable=not progress):
        sample = samples[i]
        rgb = None if missing == "rgb" else sample.rgb
        thermal = None if missing == "thermal" else sample.thermal
        pred = predictor.predict(rgb, thermal)
        latencies.append(pred.timings_ms["total"] / 1e3)
        metrics = [metric]
        if group_of is not None:
            group = group_of(sample.name)
            if group not in by_group:
                by_group[group] = task_def.metric(names)
            metrics.append(by_group[group])
        for m in metrics:
            task_def.score_sample(m, sample, pred)
        if i in chosen:
            path = Path(overlay_dir) / f"{i:05d}_{Path(sample.name).stem or f'frame{i:05d}'}.png"
            picture = _overlay(engine, task_def, sample, pred, rgb, thermal)
            written.append(str(write_overlay(path, picture)))
    return {
        "task": task,
        "class_names": list(names),
        "images": len(samples),
        "metrics": metric.compute(),
        "by_group": {g: m.compute() for g, m in sorted(by_group.items())},
        "classes": classes,
        "latency": percentiles_ms(latencies),
        "backend": engine.backend_name,
        "missing": missing,
        "overlays": written,
    }


def _overlay(engine, task_def, sample: RGBTSample, pred, rgb, thermal) -> np.ndarray:
    """RGB | thermal panels with the confident results and the ground truth boxes; a
    withheld camera's panel is black: what the model saw."""
    dets = pred.detections
    if dets is not None:
        keep = dets.scores >= OVERLAY_SCORE
        dets = type(dets)(dets.boxes[keep], dets.scores[keep], dets.class_ids[keep])
    thermal01 = engine.thermal_norm.normalize(sample.thermal)
    return render_overlay(
        np.zeros_like(sample.rgb) if rgb is None else rgb,
        np.zeros_like(thermal01) if thermal is None else thermal01,
        engine.class_names,
        detections=dets,
        mask=pred.mask,
        saliency=pred.saliency,
        gt_boxes=sample.boxes if task_def.produces_boxes else None,
        gt_labels=sample.labels if task_def.produces_boxes else None,
    )


def format_table(report: dict[str, Any]) -> str:
    """A readable two-column table of a report's metrics (NaN shown as '-')."""
    rows = [(k, v) for k, v in report["metrics"].items() if k != "images"]
    width = max(len(k) for k, _ in rows) + 2
    lines = [f"{report['task']} on {report['images']} images ({report['backend']})"]
    if report.get("missing"):
        lines[0] += f", {report['missing']} camera missing"
    lines.append("-" * (width + 10))
    for key, value in rows:
        shown = "-" if isinstance(value, float) and math.isnan(value) else f"{value:8.4f}"
        lines.append(f"{key:<{width}}{shown}")
    for group, figures in report.get("by_group", {}).items():
        if "map50" in figures:
            lines.append(f"{'map50 (' + group + ')':<{width}}{figures['map50']:8.4f}")
    for key, value in report.get("classes", {}).items():
        if value:
            lines.append(f"{key.replace('_', ' ')}: {', '.join(value)}")
    lat = report.get("latency", {})
    if lat.get("n"):
        lines.append(f"{'latency p50 / p95':<{width}}{lat['p50_ms']:.1f} / {lat['p95_ms']:.1f} ms")
    return "\n".join(lines)
