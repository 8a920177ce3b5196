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
    c, lat, sync, acc = report["counts"], report["latency"], report["sync"], report["accuracy"]
    n = max(c["rgb_frames"], 1)
    rows: list[tuple[str, str]] = [
        (
            "mode",
            f"{report['mode']}" + (f" at x{report['rate']:g}" if report["mode"] == "dds" else ""),
        ),
        (
            "model",
            f"{report['model'].get('checkpoint', '-')} ({report['model'].get('task', '-')}, "
            f"backend {report['model'].get('backend', '-')})"
            + (
                f"; lone frames: {report['model']['fallback_checkpoint']}"
                if report["model"].get("fallback_checkpoint")
                else ""
            ),
        ),
        ("bag", f"{report['input']['bag']} ({report['input']['storage']})"),
        ("RGB frames", str(c["rgb_frames"])),
        ("  matched (RGB+thermal)", f"{c['matched']} ({100 * c['matched'] / n:.1f}%)"),
        ("  degraded (one camera)", f"{c['degraded']} ({100 * c['degraded'] / n:.1f}%)"),
        ("  dropped (no result)", f"{c['dropped']} ({100 * c['dropped'] / n:.1f}%)"),
        ("node drop counters", _drop_reasons(report.get("node_counters") or {})),
        (
            "never reached the sync",
            f"{c.get('rgb_not_seen_by_sync', '-')} RGB frames (DDS transport / input queue)",
        ),
        (
            "other outputs",
            f"thermal-only {c['thermal_only_outputs']}, unmatched "
            f"{c['unmatched_outputs']}, duplicate {c['duplicate_outputs']}",
        ),
        ("ground truth missing", str(c["gt_missing"])),
    ]
    if acc:
        for key, label in (("map", "mAP@[.5:.95]"), ("map50", "mAP@.5"), ("miou", "mIoU")):
            if key in acc:
                rows.append((label, _fmt(acc[key])))
        if "precision" in acc:  # of the boxes the node published, at IoU .5
            rows.append(
                (
                    "precision / recall / F1 @.5",
                    " / ".join(_fmt(acc[k]) for k in ("precision", "recall", "f1")),
                )
            )
    else:
        rows.append(("accuracy", report["accuracy_note"]))
    if trk := report.get("tracking"):
        rows.append(
            (
                "tracking MOTA / IDF1 / ID switches",
                f"{_fmt(trk['mota'])} / {_fmt(trk['idf1'])} / {trk['num_switches']} "
                f"({trk['num_unique_objects']} objects)",
            )
        )
    rows += [
        (
            "latency p50 / p95 / p99",
            " / ".join(_fmt(lat.get(k), " ms") for k in ("p50_ms", "p95_ms", "p99_ms")),
        ),
    ]
    node_lat = report.get("node_latency") or {}
    if "p50_ms" in node_lat:  # replayed with --clock: the node's own now - stamp
        rows.append(
            (
                "node's latency p50 / p95",
                " / ".join(_fmt(node_lat[k], " ms") for k in ("p50_ms", "p95_ms")) + " (bag time)",
            )
        )
    rows += [
        ("output rate", _fmt(report["output_rate_hz"], " Hz")),
        (
            "sync: fused, pair offset",
            f"{100 * sync['fused_fraction']:.1f}%, mean "
            f"{_fmt(sync['pair_offset_abs_mean_ms'], ' ms')}",
        ),
    ]
    if report["input"].get("error"):
        rows.append(("BAG ERROR", report["input"]["error"]))
    width = max(len(k) for k, _ in rows)
    line = "-" * (width + 2 + max(len(v) for _, v in rows))
    body = "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
    return f"{line}\n{body}\n{line}"
