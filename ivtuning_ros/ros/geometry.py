"""Bring a thermal image onto the RGB image's pixel grid.

Thermal cameras rarely share the RGB camera's resolution, aspect ratio or field of view.
The node maps each thermal frame with an optional crop (thermal pixels) followed by
either a 2x3 affine (cropped-thermal pixels -> RGB pixels, e.g. from a calibration) or a
plain resize to the RGB size. Without a crop or affine, different aspect ratios would be
stretched: `ThermalGeometry.aspect_mismatch` lets the node warn and report it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ThermalGeometry:
    crop: tuple[int, int, int, int] | None = None  # x, y, width, height in thermal pixels
    affine: tuple[float, ...] | None = None  # row-major 2x3, cropped thermal -> RGB pixels

    def __post_init__(self) -> None:
        if self.crop is not None:
            if len(self.crop) != 4:
                raise ValueError(
                    f"thermal_crop needs 4 values [x, y, width, height], got {self.crop}"
                )
            x, y, w, h = self.crop
            if x < 0 or y < 0 or w <= 0 or h <= 0:
                raise ValueError(
                    f"thermal_crop [x, y, width, height] needs x, y >= 0 and width, height > 0, "
                    f"got {list(self.crop)}"
                )
        if self.affine is not None:
            if len(self.affine) != 6 or not np.isfinite(self.affine).all():
                raise ValueError(
                    f"thermal_affine needs 6 finite values (row-major 2x3), got {self.affine}"
                )
            if abs(np.linalg.det(np.asarray(self.affine).reshape(2, 3)[:, :2])) < 1e-9:
                raise ValueError(f"thermal_affine {list(self.affine)} is singular (not invertible)")

    @staticmethod
    def from_params(crop: list[int], affine: list[float]) -> ThermalGeometry:
        """Empty lists mean 'not set' (ROS parameters cannot be None)."""
        return ThermalGeometry(
            tuple(int(v) for v in crop) if len(crop) else None,
            tuple(float(v) for v in affine) if len(affine) else None,
        )

    def aspect_mismatch(self, thermal_hw: tuple[int, int], rgb_hw: tuple[int, int]) -> bool:
        """True when a plain resize would stretch the thermal image by more than 2%."""
        if self.affine is not None:
            return False
        h, w = (self.crop[3], self.crop[2]) if self.crop is not None else thermal_hw
        return abs((w / h) / (rgb_hw[1] / rgb_hw[0]) - 1.0) > 0.02

    def apply(self, thermal: np.ndarray, rgb_hw: tuple[int, int]) -> np.ndarray:
        """(h, w) thermal in source units -> (H, W) on the RGB grid (float32)."""
        t = thermal
        if self.crop is not None:
            x, y, w, h = self.crop
            if x + w > t.shape[1] or y + h > t.shape[0]:
                raise ValueError(
                    f"thermal_crop {list(self.crop)} exceeds the thermal image "
                    f"({t.shape[1]}x{t.shape[0]})"
                )
            t = t[y : y + h, x : x + w]
        out_wh = (rgb_hw[1], rgb_hw[0])
        if self.affine is not None:
            m = np.asarray(self.affine, np.float64).reshape(2, 3)
            return cv2.warpAffine(
                np.ascontiguousarray(t, np.float32),
                m,
                out_wh,
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
        if t.shape[:2] == tuple(rgb_hw):
            return np.ascontiguousarray(t, np.float32)
        return cv2.resize(
            np.ascontiguousarray(t, np.float32), out_wh, interpolation=cv2.INTER_LINEAR
        )
