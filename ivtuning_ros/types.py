"""Plain types that cross module boundaries (data -> preprocess -> model/engine -> ros)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The two cameras, by the names configs, parameters and reports use.
CAMERAS = ("rgb", "thermal")


@dataclass(frozen=True)
class Detections:
    """Detections for one image, boxes in pixels of the ORIGINAL RGB image (xyxy)."""

    boxes: np.ndarray  # (N, 4) float32 x_min, y_min, x_max, y_max
    scores: np.ndarray  # (N,) float32 in [0, 1]
    class_ids: np.ndarray  # (N,) int64
    # (N,) int64 object identities from tracking.DetectionTracker (-1: not yet a track);
    # None when nothing tracked these detections
    track_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.boxes.shape != (n, 4) or self.class_ids.shape != (n,):
            raise ValueError(
                f"Detections: boxes {self.boxes.shape}, scores {self.scores.shape} and "
                f"class_ids {self.class_ids.shape} disagree"
            )
        if self.track_ids is not None and self.track_ids.shape != (n,):
            raise ValueError(f"Detections: {n} boxes but track_ids {self.track_ids.shape}")

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def empty() -> Detections:
        return Detections(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)
        )


@dataclass
class RGBTSample:
    """One registered RGB + thermal pair with whatever targets its dataset provides.

    `thermal` keeps the source's own units (8-bit AGC counts, raw Y16 counts or degrees
    Celsius); `preprocess.ThermalNorm` maps it to [0, 1] identically in training and in
    the node.
    """

    rgb: np.ndarray  # (H, W, 3) uint8, RGB channel order
    thermal: np.ndarray  # (H, W) float32, source units
    name: str = ""
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    mask: np.ndarray | None = None  # (H, W) uint8 class ids, 255 = ignore
    saliency: np.ndarray | None = None  # (H, W) float32 in [0, 1]
    # (N,) int64 identity of each box's object over a sequence (synthetic scenes know it;
    # the ground truth of tracking)
    instance_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or self.rgb.dtype != np.uint8:
            raise ValueError(
                f"{self.name or 'sample'}: rgb must be HxWx3 uint8, got "
                f"{self.rgb.shape} {self.rgb.dtype}"
            )
        if self.thermal.ndim != 2:
            raise ValueError(
                f"{self.name or 'sample'}: thermal must be HxW, got {self.thermal.shape}"
            )
        if self.thermal.shape != self.rgb.shape[:2]:
            raise ValueError(
                f"{self.name or 'sample'}: rgb {self.rgb.shape[:2]} and thermal "
                f"{self.thermal.shape} differ in size (register/resize them first)"
            )
