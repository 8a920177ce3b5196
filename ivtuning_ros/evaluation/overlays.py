"""Overlay pictures for a human check of predictions: RGB | thermal side by side, with
ground truth (thin white) and predictions (thick, one colour per class) drawn on both."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ivtuning_ros.types import Detections

# Distinct BGR colours (tab10-like); class k uses PALETTE[k % len(PALETTE)].
PALETTE = (
    (180, 119, 31),
    (14, 127, 255),
    (44, 160, 44),
    (40, 39, 214),
    (189, 103, 148),
    (75, 86, 140),
    (194, 119, 227),
    (127, 127, 127),
    (34, 189, 188),
    (207, 190, 23),
)


def class_colour(class_id: int) -> tuple[int, int, int]:
    return PALETTE[int(class_id) % len(PALETTE)]


def _draw_boxes(
    img: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray | None,
    class_names: Sequence[str],
    ground_truth: bool,
) -> None:
    for i, (box, label) in enumerate(zip(boxes, labels, strict=True)):
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        colour = (255, 255, 255) if ground_truth else class_colour(label)
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, 1 if ground_truth else 2)
        if ground_truth:
            continue
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        text = f"{name} {scores[i]:.2f}" if scores is not None else name
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        ty = max(y0, th + 2)
        cv2.rectangle(img, (x0, ty - th - 2), (x0 + tw + 2, ty), colour, -1)
        cv2.putText(img, text, (x0 + 1, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)


def _blend_mask(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    colours = np.array([class_colour(k) for k in range(256)], np.uint8)
    colours[255] = 0  # ignore
    tint = colours[mask]
    keep = (mask != 255)[..., None]
    return np.where(keep, (0.55 * img + 0.45 * tint).astype(np.uint8), img)


def _blend_saliency(img: np.ndarray, saliency: np.ndarray) -> np.ndarray:
    heat = cv2.applyColorMap(np.clip(saliency * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    return (0.5 * img + 0.5 * heat).astype(np.uint8)


def render_overlay(
    rgb: np.ndarray,
    thermal01: np.ndarray,
    class_names: Sequence[str],
    detections: Detections | None = None,
    mask: np.ndarray | None = None,
    saliency: np.ndarray | None = None,
    gt_boxes: np.ndarray | None = None,
    gt_labels: np.ndarray | None = None,
) -> np.ndarray:
    """A BGR picture (H, 2W, 3): RGB on the left, thermal (given in [0, 1]) on the right."""
    if thermal01.shape != rgb.shape[:2]:
        raise ValueError(f"overlay: thermal {thermal01.shape} and rgb {rgb.shape[:2]} differ")
    left = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    right = cv2.applyColorMap(
        np.clip(thermal01 * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO
    )
    panels = []
    for panel in (left, right):
        if mask is not None:
            panel = _blend_mask(panel, mask)
        if saliency is not None:
            panel = _blend_saliency(panel, saliency)
        panel = np.ascontiguousarray(panel)
        if gt_boxes is not None and gt_labels is not None:
            _draw_boxes(panel, gt_boxes, gt_labels, None, class_names, ground_truth=True)
        if detections is not None:
            _draw_boxes(
                panel,
                detections.boxes,
                detections.class_ids,
                detections.scores,
                class_names,
                ground_truth=False,
            )
        panels.append(panel)
    return np.concatenate(panels, axis=1)


def write_overlay(path: str | Path, picture: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), picture):
        raise OSError(f"could not write overlay {path}")
    return path
