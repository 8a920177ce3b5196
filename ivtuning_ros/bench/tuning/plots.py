"""`ivtuning bench tuning --plot`: bar charts of a report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ivtuning_ros.bench.tuning.recipe import SEEN, UNSEEN
from ivtuning_ros.bench.tuning.results import DEGRADED, _dropout_text
from ivtuning_ros.types import CAMERAS


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["modes"]
    names = [r["mode"] for r in rows]
    x = np.arange(len(names))
    degraded = [r for r in rows if DEGRADED[0] in r]
    fig, axes = plt.subplots(1, 3 + bool(degraded), figsize=(13 + 4 * bool(degraded), 3.8))
    real = report.get("data") == "real"
    labels = (
        (("seen", "MSRS test blocks"), ("unseen", "night test blocks"))
        if real
        else (("seen", "seen conditions"), ("unseen", f"unseen ({UNSEEN[0]})"))
    )
    for offset, (split, label) in zip((-0.2, 0.2), labels, strict=True):
        means = np.array([r[f"map50_{split}"] for r in rows])
        low = means - [r[f"map50_{split}_min"] for r in rows]
        high = [max(run[f"map50_{split}"] for run in r["runs"]) for r in rows] - means
        axes[0].bar(x + offset, means, 0.4, yerr=[low, high], capsize=3, label=label)
    seeds = report["seeds"]
    axes[0].set_title(
        "mAP50" + (f" (mean, min-max over {len(seeds)} seeds)" if len(seeds) > 1 else "")
    )
    axes[0].legend(fontsize=8)
    axes[1].bar(x, [r["peak_training_increase_mib"] for r in rows], color="tab:red")
    axes[1].set_title("peak training memory (RSS increase, MiB)")
    axes[2].bar(x, [r["step_ms_median"] for r in rows], color="tab:green")
    axes[2].set_title("time per step (ms, median)")
    for ax in axes[:3]:
        ax.set_xticks(x, names, rotation=25, ha="right")
        ax.grid(axis="y", alpha=0.3)
    if degraded:
        _plot_camera_failure(axes[3], rows, degraded)
    train = report["config"]["data"]["train"]
    dropout = report.get("modality_dropout", 0.0)
    data = (
        "real MSRS road scenes (train blocks)"
        if real
        else f"{train['synthetic']['count']} training pairs ({' + '.join(SEEN)}), "
        f"{train['synthetic'].get('thermal_optics', 'fixed')} thermal optics"
    )
    fig.suptitle(
        f"{report['preset']} detection, {data}, {report['config']['train']['epochs']} epochs"
        + (
            f", fusion modes' modality dropout "
            f"{_dropout_text(dropout, report.get('dropout_stream', 'either'))}"
            if dropout
            else ""
        )
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def _plot_camera_failure(ax, rows: list[dict[str, Any]], degraded: list[dict[str, Any]]) -> None:
    """Seen-test mAP50 of the fusion modes with both cameras and with each one missing,
    against the single-camera models trained for that case (dashed)."""
    x = np.arange(len(degraded))
    bars = [("both cameras", "map50_seen")]
    bars += [(f"{camera} missing", f"map50_seen_{camera}_missing") for camera in CAMERAS]
    for i, (label, key) in enumerate(bars):
        ax.bar(x + (i - 1) * 0.27, [r[key] for r in degraded], 0.27, label=label)
    styles = {"rgb_only": "--", "thermal_only": ":"}
    for r in rows:
        if r["mode"] in styles:
            ax.axhline(
                r["map50_seen"], color="k", ls=styles[r["mode"]], lw=1, label=f"{r['mode']} model"
            )
    ax.set_xticks(x, [r["mode"] for r in degraded], rotation=25, ha="right")
    ax.set_title("one camera missing (mAP50, seen test)")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
