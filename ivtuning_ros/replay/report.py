"""The replay report: a plain terminal table and a JSON file that says what was run on what.

The JSON carries the input bag's hash, the ground truth's hash, the full node
configuration and the versions of every library on the data path, so two reports can
be compared knowing whether the inputs or the software differed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import os
import platform
from pathlib import Path

from ivtuning_ros import __version__

_LIBRARIES = (
    "numpy",
    "opencv-python-headless",
    "torch",
    "timm",
    "onnxruntime",
    "tensorrt",
    "rosbags",
    "rclpy",
    "pycocotools",
    "matplotlib",
)


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(), "ivtuning_ros": __version__}
    for name in _LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["rmw_implementation"] = os.environ.get("RMW_IMPLEMENTATION", "default (rmw_fastrtps_cpp)")
    return out


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _fmt(v: object, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}{unit}" if abs(v) < 10 else f"{v:.1f}{unit}"
    return f"{v}{unit}"


def _drop_reasons(counters: dict) -> str:
    """Why frames were dropped, from the node's own counters (sync, overload, bad input)."""
    skip = (
        "pairs",
        "degraded_rgb_only",
        "degraded_thermal_only",
        "fallback_results",
        "overlays_drawn",
    )
    items = [
        f"{k} {v}"
        for k, v in sorted(counters.items())
        if isinstance(v, int) and not k.startswith("reason ") and k not in skip
    ]
    return ", ".join(items) or "none"


def render_table(report: dict) -> str:
    """Two-column plain-text table of the figures a user looks at first."""
    rows = [*_run_rows(report), *_accuracy_rows(report), *_timing_rows(report)]
    if report["input"].get("error"):
        rows.append(("BAG ERROR", report["input"]["error"]))
    width = max(len(k) for k, _ in rows)
    line = "-" * (width + 2 + max(len(v) for _, v in rows))
    body = "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
    return f"{line}\n{body}\n{line}"


def _run_rows(report: dict) -> list[tuple[str, str]]:
    """What ran, and what became of every RGB frame."""
    c, model = report["counts"], report["model"]
    n = max(c["rgb_frames"], 1)
    mode = report["mode"] + (f" at x{report['rate']:g}" if report["mode"] == "dds" else "")
    described = (
        f"{model.get('checkpoint', '-')} ({model.get('task', '-')}, "
        f"backend {model.get('backend', '-')})"
    )
    if model.get("fallback_checkpoint"):
        described += f"; lone frames: {model['fallback_checkpoint']}"
    return [
        ("mode", mode),
        ("model", described),
        ("bag", f"{report['input']['bag']} ({report['input']['storage']})"),
        ("RGB frames", str(c["rgb_frames"])),
        ("  matched (RGB+thermal)", f"{c['matched']} ({100 * c['matched'] / n:.1f}%)"),
        ("  degraded (one camera)", f"{c['degraded']} ({100 * c['degraded'] / n:.1f}%)"),
        ("  dropped (no result)", f"{c['dropped']} ({100 * c['dropped'] / n:.1f}%)"),
        ("node drop counters", _drop_reasons(report.get("node_counters") or {})),
        ("never reached the sync",
         f"{c.get('rgb_not_seen_by_sync', '-')} RGB frames (DDS transport / input queue)"),
        ("other outputs", f"thermal-only {c['thermal_only_outputs']}, unmatched "
         f"{c['unmatched_outputs']}, duplicate {c['duplicate_outputs']}"),
        ("ground truth missing", str(c["gt_missing"])),
    ]  # fmt: skip


def _accuracy_rows(report: dict) -> list[tuple[str, str]]:
    acc = report["accuracy"]
    if not acc:
        return [("accuracy", report["accuracy_note"])]
    rows = [
        (label, _fmt(acc[key]))
        for key, label in (("map", "mAP@[.5:.95]"), ("map50", "mAP@.5"), ("miou", "mIoU"))
        if key in acc
    ]
    if "precision" in acc:  # of the boxes the node published, at IoU .5
        prf = " / ".join(_fmt(acc[k]) for k in ("precision", "recall", "f1"))
        rows.append(("precision / recall / F1 @.5", prf))
    if trk := report.get("tracking"):
        ids = f"{_fmt(trk['mota'])} / {_fmt(trk['idf1'])} / {trk['num_switches']}"
        rows.append(("tracking MOTA / IDF1 / ID switches",
                     f"{ids} ({trk['num_unique_objects']} objects)"))  # fmt: skip
    return rows


def _timing_rows(report: dict) -> list[tuple[str, str]]:
    lat, sync = report["latency"], report["sync"]
    rows = [
        ("latency p50 / p95 / p99",
         " / ".join(_fmt(lat.get(k), " ms") for k in ("p50_ms", "p95_ms", "p99_ms"))),
    ]  # fmt: skip
    node_lat = report.get("node_latency") or {}
    if "p50_ms" in node_lat:  # replayed with --clock: the node's own now - stamp
        own = " / ".join(_fmt(node_lat[k], " ms") for k in ("p50_ms", "p95_ms"))
        rows.append(("node's latency p50 / p95", own + " (bag time)"))
    offset = _fmt(sync["pair_offset_abs_mean_ms"], " ms")
    rows += [
        ("output rate", _fmt(report["output_rate_hz"], " Hz")),
        ("sync: fused, pair offset", f"{100 * sync['fused_fraction']:.1f}%, mean {offset}"),
    ]
    return rows
