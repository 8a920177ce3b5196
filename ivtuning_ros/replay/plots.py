"""PNG figures of a replay: latency over time, latency histogram, overlay frames."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ivtuning_ros.replay.matching import FrameOutcome, ReplayAccounting
from ivtuning_ros.ros.outputs import render_overlay
from ivtuning_ros.types import Detections

GT_COLOUR = (255, 255, 255)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on robots or CI
    import matplotlib.pyplot as plt

    return plt


def latency_plots(
    acc: ReplayAccounting, out_dir: Path, title: str, ylabel: str = "end-to-end latency [ms]"
) -> list[Path]:
    """latency_over_time.png (dropped frames marked) and latency_hist.png (percentiles)."""
    plt = _pyplot()
    frames = acc.frames
    if not frames:
        return []
    t0 = frames[0].publish_ns
    colours = {"matched": "tab:blue", "degraded": "tab:orange"}
    paths = []

    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=110)
    for status, colour in colours.items():
        sel = [f for f in frames if f.status == status]
        if sel:
            ax.plot(
                [(f.publish_ns - t0) / 1e9 for f in sel],
                [f.latency_ms for f in sel],
                ".",
                ms=4,
                color=colour,
                label=f"{status} ({len(sel)})",
            )
    dropped = [(f.publish_ns - t0) / 1e9 for f in frames if f.status == "dropped"]
    if dropped:
        ax.plot(
            dropped,
            np.zeros(len(dropped)),
            "|",
            ms=10,
            color="tab:red",
            label=f"dropped ({len(dropped)})",
        )
    ax.set_xlabel("replay time of the RGB frame [s]")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    paths.append(out_dir / "latency_over_time.png")
    fig.savefig(paths[-1])
    plt.close(fig)

    lat = np.array([f.latency_ms for f in frames if f.status != "dropped"])
    if lat.size:
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
        ax.hist(lat, bins=min(40, max(5, lat.size // 3)), color="tab:blue", alpha=0.8)
        for q, style in ((50, "-"), (95, "--"), (99, ":")):
            v = float(np.percentile(lat, q))
            ax.axvline(v, color="k", ls=style, lw=1, label=f"p{q} {v:.1f} ms")
        ax.set_xlabel(ylabel)
        ax.set_ylabel("frames")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(out_dir / "latency_hist.png")
        fig.savefig(paths[-1])
        plt.close(fig)
    return paths


def pick_overlay_frames(frames: Sequence[FrameOutcome], n: int) -> list[int]:
    """Stamps of up to n frames with results, spread evenly over the replay."""
    done = [f.stamp_ns for f in frames if f.status != "dropped"]
    if not done or n <= 0:
        return []
    idx = np.unique(np.linspace(0, len(done) - 1, min(n, len(done))).round().astype(int))
    return [done[i] for i in idx]


def overlay_frame(
    rgb: np.ndarray,
    class_names: Sequence[str],
    detections: Detections | None,
    mask: np.ndarray | None,
    gt_boxes: np.ndarray | None,
    banner: str,
) -> np.ndarray:
    """The node's own overlay drawing, plus ground-truth boxes in thin white."""
    out = render_overlay(rgb, class_names, detections=detections, mask=mask, banner=banner)
    if gt_boxes is not None:
        for x0, y0, x1, y1 in np.asarray(gt_boxes).round().astype(int):
            cv2.rectangle(out, (x0, y0), (x1, y1), GT_COLOUR, 1, cv2.LINE_AA)
        cv2.putText(
            out,
            "white: ground truth",
            (4, 12),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.38,
            GT_COLOUR,
            1,
            cv2.LINE_AA,
        )
    return out


def save_rgb_png(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1])):
        raise OSError(f"cannot write image {path}")


def montage(tiles: Sequence[np.ndarray], columns: int) -> np.ndarray:
    """Tiles (same size expected; others are resized to the first) in a grid."""
    h, w = tiles[0].shape[:2]
    tiles = [t if t.shape[:2] == (h, w) else cv2.resize(t, (w, h)) for t in tiles]
    rows = -(-len(tiles) // columns)
    grid = np.zeros((rows * h, min(columns, len(tiles)) * w, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = t
    return grid
