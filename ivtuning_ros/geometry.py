"""Bring a thermal image onto the RGB image's pixel grid: the one mapping of the pixel path.

Thermal cameras rarely share the RGB camera's resolution, aspect ratio, field of view or
optical axis. A thermal frame is mapped with an optional crop (thermal pixels) followed by
a 3x3 homography or a 2x3 affine (cropped-thermal pixels -> RGB pixels, e.g. from
`ivtuning calibrate`), or by a plain resize to the RGB size. The node (its thermal_crop /
thermal_affine / thermal_homography parameters), `ivtuning eval` and training
(`thermal_geometry:` of a data source) read the same parameters and call the same
`ThermalGeometry.apply`. Without a crop or mapping, different aspect ratios would be
stretched: `aspect_mismatch` lets the node warn and report it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

PARAMS = ("thermal_crop", "thermal_affine", "thermal_homography")


@dataclass(frozen=True)
class ThermalGeometry:
    crop: tuple[int, int, int, int] | None = None  # x, y, width, height in thermal pixels
    affine: tuple[float, ...] | None = None  # row-major 2x3, cropped thermal -> RGB pixels
    homography: tuple[float, ...] | None = None  # row-major 3x3, cropped thermal -> RGB

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
        if self.affine is not None and self.homography is not None:
            raise ValueError("set thermal_affine or thermal_homography, not both")
        if self.affine is not None:
            if len(self.affine) != 6 or not np.isfinite(self.affine).all():
                raise ValueError(
                    f"thermal_affine needs 6 finite values (row-major 2x3), got {self.affine}"
                )
            if abs(np.linalg.det(np.asarray(self.affine).reshape(2, 3)[:, :2])) < 1e-9:
                raise ValueError(f"thermal_affine {list(self.affine)} is singular (not invertible)")
        if self.homography is not None:
            if len(self.homography) != 9 or not np.isfinite(self.homography).all():
                raise ValueError(
                    f"thermal_homography needs 9 finite values (row-major 3x3), got "
                    f"{self.homography}"
                )
            if abs(np.linalg.det(np.asarray(self.homography).reshape(3, 3))) < 1e-12:
                raise ValueError(
                    f"thermal_homography {list(self.homography)} is singular (not invertible)"
                )

    @staticmethod
    def from_params(
        crop: list[int], affine: list[float], homography: list[float] | None = None
    ) -> ThermalGeometry:
        """Parameter values; all zeros or empty lists mean 'not set' (ROS parameters
        cannot be None)."""

        def given(values):
            return values is not None and len(values) and any(values)

        return ThermalGeometry(
            tuple(int(v) for v in crop) if given(crop) else None,
            tuple(float(v) for v in affine) if given(affine) else None,
            tuple(float(v) for v in homography) if given(homography) else None,
        )

    @staticmethod
    def from_file(path: str | Path) -> ThermalGeometry:
        """The thermal_* parameters of a node parameters YAML (the file `ivtuning
        calibrate` writes, `<node>: ros__parameters: ...`, or a flat mapping)."""
        import yaml

        doc = yaml.safe_load(Path(path).read_text()) or {}
        values = _find_params(doc)
        if values is None:
            raise ValueError(f"{path}: no thermal_crop / thermal_affine / thermal_homography")
        try:
            return ThermalGeometry.from_params(
                list(values.get("thermal_crop") or []),
                list(values.get("thermal_affine") or []),
                list(values.get("thermal_homography") or []),
            )
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    @property
    def matrix(self) -> np.ndarray | None:
        """The 3x3 mapping (cropped thermal -> RGB pixels), or None for a plain resize."""
        if self.homography is not None:
            return np.asarray(self.homography, np.float64).reshape(3, 3)
        if self.affine is not None:
            return np.vstack([np.asarray(self.affine, np.float64).reshape(2, 3), [0, 0, 1]])
        return None

    def aspect_mismatch(self, thermal_hw: tuple[int, int], rgb_hw: tuple[int, int]) -> bool:
        """True when a plain resize would stretch the thermal image by more than 2%."""
        if self.matrix is not None:
            return False
        h, w = (self.crop[3], self.crop[2]) if self.crop is not None else thermal_hw
        return abs((w / h) / (rgb_hw[1] / rgb_hw[0]) - 1.0) > 0.02

    def apply(self, thermal: np.ndarray, rgb_hw: tuple[int, int]) -> np.ndarray:
        """(h, w) thermal in any units -> (H, W) float32 on the RGB grid."""
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
        t = np.ascontiguousarray(t, np.float32)
        if self.homography is not None:
            return cv2.warpPerspective(
                t, self.matrix, out_wh, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
        if self.affine is not None:
            return cv2.warpAffine(
                t, self.matrix[:2], out_wh, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
        if t.shape[:2] == tuple(rgb_hw):
            return t
        return cv2.resize(t, out_wh, interpolation=cv2.INTER_LINEAR)


def _find_params(doc) -> dict | None:
    """The mapping holding thermal_* keys, at any depth of a parameters YAML."""
    if not isinstance(doc, dict):
        return None
    if any(k in doc for k in PARAMS):
        return doc
    for value in doc.values():
        found = _find_params(value)
        if found is not None:
            return found
    return None
