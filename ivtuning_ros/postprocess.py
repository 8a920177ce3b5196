"""Inference-module outputs for ONE image -> results in pixels of the original RGB image.

Every coordinate goes back through `preprocess.Letterbox` (the one place that maps between
network-input and source pixels): boxes with `boxes_to_source`, maps with `map_to_source`.
Class masks are resized with nearest neighbour (ids must never be blended); saliency maps
with bilinear interpolation. Non-finite network outputs raise instead of turning into
garbage detections, so the caller can count a dropped frame.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torchvision.ops import batched_nms

from ivtuning_ros.preprocess import Letterbox
from ivtuning_ros.types import Detections

# One operating point for every place that needs a score threshold and has no better one:
# the node for a checkpoint that records no validated threshold, overlays, the Predictor.
DEFAULT_SCORE_THRESHOLD = 0.3
# Scoring mAP keeps nearly every candidate: average precision integrates over scores.
AP_SCORE_THRESHOLD = 0.001


def _check_finite(name: str, array: np.ndarray) -> None:
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ValueError(f"network output {name!r} has {bad} non-finite values (NaN/inf)")


def decode_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    letterbox: Letterbox,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    iou_threshold: float = 0.5,
    max_detections: int = 100,
) -> Detections:
    """Top-K candidates of one image -> final Detections in original-image pixels.

    boxes (K, 4) xyxy in network-input pixels, scores (K,), class_ids (K,). Candidates are
    kept above `score_threshold`, mapped to the source image (clipped; boxes that lie
    entirely in the letterbox padding vanish), suppressed per class (a person and a car
    may overlap) and cut to the `max_detections` best.
    """
    boxes = np.asarray(boxes, np.float32)
    scores = np.asarray(scores, np.float32)
    class_ids = np.asarray(class_ids)
    k = len(scores)
    if boxes.shape != (k, 4) or class_ids.shape != (k,):
        raise ValueError(
            f"detection outputs disagree: boxes {boxes.shape}, scores {scores.shape}, "
            f"class_ids {class_ids.shape} (expected (K,4), (K,), (K,))"
        )
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must lie in [0, 1], got {iou_threshold}")
    if max_detections < 0:
        raise ValueError(f"max_detections must be >= 0, got {max_detections}")
    _check_finite("boxes", boxes)
    _check_finite("scores", scores)

    keep = scores >= score_threshold
    if not keep.any() or max_detections == 0:
        return Detections.empty()
    src = letterbox.boxes_to_source(boxes[keep])
    kept_scores = scores[keep]
    kept_ids = class_ids[keep].astype(np.int64)
    # Clipping can collapse a box that lay in the padding: nothing left to report.
    area_ok = (src[:, 2] > src[:, 0]) & (src[:, 3] > src[:, 1])
    src, kept_scores, kept_ids = src[area_ok], kept_scores[area_ok], kept_ids[area_ok]
    if len(kept_scores) == 0:
        return Detections.empty()
    order = batched_nms(
        torch.from_numpy(src),
        torch.from_numpy(kept_scores),
        torch.from_numpy(kept_ids),
        float(iou_threshold),
    ).numpy()[:max_detections]
    return Detections(src[order], kept_scores[order], kept_ids[order])


def decode_mask(class_ids: np.ndarray, letterbox: Letterbox) -> np.ndarray:
    """(h, w) class ids at network-input size -> (H, W) uint8 ids in original pixels."""
    ids = np.asarray(class_ids)
    if ids.shape != (letterbox.dst_h, letterbox.dst_w):
        raise ValueError(
            f"mask output has shape {ids.shape}, expected the network input size "
            f"{(letterbox.dst_h, letterbox.dst_w)}"
        )
    if ids.size and (ids.min() < 0 or ids.max() > 254):
        raise ValueError(
            f"mask class ids must lie in [0, 254] to fit mono8 (255 = ignore), got "
            f"[{ids.min()}, {ids.max()}]"
        )
    return letterbox.map_to_source(ids.astype(np.uint8), cv2.INTER_NEAREST)


def decode_saliency(saliency: np.ndarray, letterbox: Letterbox) -> np.ndarray:
    """(1, h, w) or (h, w) saliency in [0, 1] -> (H, W) float32 in original pixels."""
    sal = np.asarray(saliency, np.float32)
    if sal.ndim == 3 and sal.shape[0] == 1:
        sal = sal[0]
    if sal.shape != (letterbox.dst_h, letterbox.dst_w):
        raise ValueError(
            f"saliency output has shape {np.asarray(saliency).shape}, expected (1, "
            f"{letterbox.dst_h}, {letterbox.dst_w})"
        )
    _check_finite("saliency", sal)
    out = letterbox.map_to_source(sal, cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
