"""Calibration images for int8 engines, read from a folder of registered RGB-T pairs.

Layout: `<dir>/visible/` + `<dir>/infrared/` (LLVIP style), `<dir>/vi/` + `<dir>/ir/`
(MSRS) or `<dir>/rgb/` + `<dir>/thermal/`, files paired by name stem. Thermal images
may be 8- or 16-bit; they go through the checkpoint's ThermalNorm exactly as in the node,
so the calibrated ranges match what the engine will see.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from ivtuning_ros.preprocess import ThermalNorm, prepare_pair

MIN_SIDE = 32  # smaller images are no sample of what a camera sends
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
LAYOUTS = (("visible", "infrared"), ("vi", "ir"), ("rgb", "thermal"))


def calibration_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """Paired (rgb, thermal) image paths under `folder`; raises naming what is missing."""
    folder = Path(folder)
    for rgb_name, th_name in LAYOUTS:
        rgb_dir, th_dir = folder / rgb_name, folder / th_name
        if rgb_dir.is_dir() and th_dir.is_dir():
            thermal = {p.stem: p for p in th_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
            pairs = [
                (p, thermal[p.stem])
                for p in sorted(rgb_dir.iterdir())
                if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in thermal
            ]
            if not pairs:
                raise ValueError(
                    f"calibration folder {folder}: no same-named images in "
                    f"{rgb_name}/ and {th_name}/"
                )
            return pairs
    if not folder.is_dir():
        raise FileNotFoundError(f"calibration folder {folder} does not exist")
    raise FileNotFoundError(
        f"calibration folder {folder} needs visible/ + infrared/, vi/ + ir/ or rgb/ + "
        "thermal/ subfolders"
    )


def calibration_batches(
    folder: str | Path, input_hw: tuple[int, int], thermal_norm: ThermalNorm, limit: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Preprocessed (1,3,h,w), (1,1,h,w) tensors for up to `limit` pairs."""
    for rgb_path, th_path in calibration_pairs(folder)[:limit]:
        bgr = cv2.imread(str(rgb_path), cv2.IMREAD_COLOR)
        thermal = cv2.imread(str(th_path), cv2.IMREAD_UNCHANGED)
        if bgr is None or thermal is None:
            raise ValueError(f"cannot read calibration pair {rgb_path} / {th_path}")
        if min(bgr.shape[:2]) < MIN_SIDE or min(thermal.shape[:2]) < MIN_SIDE:
            raise ValueError(
                f"calibration pair {rgb_path} / {th_path} is too small "
                f"({bgr.shape[1]}x{bgr.shape[0]}, {thermal.shape[1]}x{thermal.shape[0]}): "
                f"give camera-sized images (>= {MIN_SIDE} px a side)"
            )
        if thermal.ndim == 3:
            thermal = cv2.cvtColor(thermal, cv2.COLOR_BGR2GRAY)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if thermal.shape != rgb.shape[:2]:
            thermal = cv2.resize(thermal, (rgb.shape[1], rgb.shape[0]))
        r, t, _ = prepare_pair(rgb, thermal.astype(np.float32), input_hw, thermal_norm)
        yield torch.from_numpy(r)[None], torch.from_numpy(t)[None]


def calibration_fingerprint(folder: str | Path, limit: int) -> str:
    """Names and sizes of the images used: part of the int8 engine's cache key."""
    items = calibration_pairs(folder)[:limit]
    return ";".join(f"{a.name}:{a.stat().st_size},{b.name}:{b.stat().st_size}" for a, b in items)
