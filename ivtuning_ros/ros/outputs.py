"""Results -> ROS messages, and the debug overlay.

Every output carries the input RGB image's header (stamp and frame_id), never now():
downstream trackers, TF lookups and synchronisers line up with the camera data. The
overlay is drawn only while someone subscribes to it (it costs milliseconds per frame).
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

from ivtuning_ros.tracking import UNTRACKED
from ivtuning_ros.types import Detections

from .codec import array_to_image

# DetectionArray.modalities by the cameras a result saw (its MODALITY_* constants)
MODALITY = {"both": 0, "rgb": 1, "thermal": 2}

try:  # a ROS 2 install, or compat/vision_msgs built into the pip-only venv
    from vision_msgs.msg import (
        BoundingBox2D,
        Detection2D,
        Detection2DArray,
        ObjectHypothesisWithPose,
    )
except ImportError:  # the node then publishes only its own DetectionArray
    Detection2DArray = None

IGNORE_ID = 255  # mask value for "no class" (drawn black, never blended)


def palette(n: int) -> np.ndarray:
    """(256, 3) uint8 colours: n well-separated hues for the classes, black for the rest."""
    out = np.zeros((256, 3), np.uint8)
    for i in range(min(n, 255)):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.85, 1.0)
        out[i] = (round(r * 255), round(g * 255), round(b * 255))
    return out


def detections_msg(
    detections: Detections,
    class_names: Sequence[str],
    header,
    modalities: int,
    thermal_stamp,
    inference_ms: float,
):
    """Our DetectionArray for one pair (header copied from the RGB image)."""
    from ivtuning_ros.msg import Detection, DetectionArray

    msg = DetectionArray(header=header, modalities=modalities, inference_time_ms=inference_ms)
    if thermal_stamp is not None:
        msg.thermal_stamp = thermal_stamp
    for box, score, cid, name, track in _named(detections, class_names):
        msg.detections.append(
            Detection(
                class_id=cid,
                class_name=name,
                score=float(score),
                x_min=float(box[0]),
                y_min=float(box[1]),
                x_max=float(box[2]),
                y_max=float(box[3]),
                track_id=track,
            )
        )
    return msg


def vision_detections_msg(detections: Detections, class_names: Sequence[str], header):
    """The same detections as vision_msgs/Detection2DArray, the type trackers and
    visualisers take: box centre and full size in RGB pixels, one hypothesis per box
    whose class_id is the class name (the pose is left at zero; this is a 2D detector);
    `id` is the track identity as text, empty when the detection is not tracked."""
    msg = Detection2DArray(header=header)
    for box, score, _, name, track in _named(detections, class_names):
        x0, y0, x1, y1 = (float(v) for v in box)
        bbox = BoundingBox2D(size_x=x1 - x0, size_y=y1 - y0)
        bbox.center.position.x = (x0 + x1) / 2
        bbox.center.position.y = (y0 + y1) / 2
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = name
        hypothesis.hypothesis.score = float(score)
        msg.detections.append(
            Detection2D(
                header=header,
                results=[hypothesis],
                bbox=bbox,
                id=str(track) if track != UNTRACKED else "",
            )
        )
    return msg


def _named(detections: Detections, class_names: Sequence[str]):
    """(box, score, class id, class name, track id) per detection; an id the label list
    lacks is named by its number; untracked detections have UNTRACKED."""
    tracks = detections.track_ids
    if tracks is None:
        tracks = np.full(len(detections), UNTRACKED, np.int64)
    for box, score, cid, track in zip(
        detections.boxes, detections.scores, detections.class_ids, tracks, strict=True
    ):
        cid = int(cid)
        name = class_names[cid] if 0 <= cid < len(class_names) else str(cid)
        yield box, score, cid, name, int(track)


def label_map_msg(class_names: Sequence[str], header):
    """LabelMap (published once, latched) naming the mask values and their colours."""
    from std_msgs.msg import ColorRGBA

    from ivtuning_ros.msg import LabelMap

    colours = palette(len(class_names))
    return LabelMap(
        header=header,
        class_ids=list(range(len(class_names))),
        class_names=list(class_names),
        colors=[
            ColorRGBA(r=c[0] / 255.0, g=c[1] / 255.0, b=c[2] / 255.0, a=1.0)
            for c in colours[: len(class_names)]
        ],
    )


def mask_msg(mask: np.ndarray, header):
    """(H, W) uint8 class ids -> mono8 Image (values as in the LabelMap)."""
    return array_to_image(np.ascontiguousarray(mask, np.uint8), "mono8", header)


def colour_mask_msg(mask: np.ndarray, n_classes: int, header):
    """(H, W) uint8 class ids -> rgb8 Image in the LabelMap's colours (ignore = black)."""
    return array_to_image(palette(n_classes)[np.asarray(mask, np.uint8)], "rgb8", header)


def saliency_msg(saliency: np.ndarray, header):
    """(H, W) float [0, 1] -> mono8 Image (0..255)."""
    s = np.clip(np.nan_to_num(saliency), 0.0, 1.0)
    return array_to_image((s * 255.0 + 0.5).astype(np.uint8), "mono8", header)


def render_overlay(
    rgb: np.ndarray,
    class_names: Sequence[str],
    detections: Detections | None = None,
    mask: np.ndarray | None = None,
    saliency: np.ndarray | None = None,
    thermal01: np.ndarray | None = None,
    mask_alpha: float = 0.5,
    banner: str = "",
) -> np.ndarray:
    """Draw results on a copy of the RGB frame (H, W, 3 uint8 RGB).

    thermal01: the thermal image on the RGB grid in [0, 1], drawn picture-in-picture in
    the top-right corner (a quarter of the width) so one image shows both inputs.
    """
    out = rgb.copy()
    colours = palette(len(class_names))
    if mask is not None:
        valid = mask != IGNORE_ID
        blend = (1 - mask_alpha) * out + mask_alpha * colours[mask]
        out[valid] = blend[valid].astype(np.uint8)
    if saliency is not None:
        heat = np.zeros_like(out)
        heat[..., 0] = 255
        a = (np.clip(saliency, 0, 1) * mask_alpha)[..., None]
        out = ((1 - a) * out + a * heat).astype(np.uint8)
    if detections is not None:
        for box, score, cid, name, track in _named(detections, class_names):
            x0, y0, x1, y1 = (int(v) for v in np.round(box))
            c = tuple(int(v) for v in colours[cid % 255])
            cv2.rectangle(out, (x0, y0), (x1, y1), c, 2)
            label = f"{name} {score:.2f}" + (f" #{track}" if track != UNTRACKED else "")
            cv2.putText(
                out,
                label,
                (x0, max(y0 - 4, 10)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.45,
                c,
                1,
                cv2.LINE_AA,
            )
    h, w = out.shape[:2]
    if thermal01 is not None and w >= 64:
        pw = w // 4
        ph = max(1, round(pw * thermal01.shape[0] / thermal01.shape[1]))
        small = cv2.resize((np.clip(thermal01, 0, 1) * 255).astype(np.uint8), (pw, ph))
        pip = cv2.applyColorMap(small, cv2.COLORMAP_INFERNO)[:, :, ::-1]
        ph = min(ph, h)
        out[:ph, w - pw :] = pip[:ph]
        cv2.rectangle(out, (w - pw, 0), (w - 1, ph - 1), (255, 255, 255), 1)
    if banner:
        cv2.putText(out, banner, (4, h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1)
    return out
