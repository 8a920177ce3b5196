"""The one small interface every backend implements, and input checks they share."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Backend(ABC):
    """Runs the exported inference module: preprocessed batches in, numpy outputs out.

    rgb_batch (B, 3, H, W) and thermal_batch (B, 1, H, W), float32 in [0, 1]; returns the
    inference-module outputs as numpy arrays (see docs/architecture.md, Model).
    """

    name: str = "backend"
    # Compiled engines are built for batch 1 (the node's case: static shapes export and
    # build faster and let TensorRT/ORT plan memory once); larger batches run in turn.
    batch_one: bool = False

    def __init__(self, input_hw: tuple[int, int]) -> None:
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.closed = False

    @abstractmethod
    def _run(self, rgb: np.ndarray, thermal: np.ndarray) -> tuple[np.ndarray, ...]: ...

    @abstractmethod
    def _close(self) -> None: ...

    def run(self, rgb_batch: np.ndarray, thermal_batch: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.closed:
            raise RuntimeError(f"the {self.name} engine was closed (node deactivated?)")
        rgb, thermal = check_inputs(rgb_batch, thermal_batch, self.input_hw)
        if not self.batch_one or rgb.shape[0] == 1:
            return self._run(rgb, thermal)
        per_image = [self._run(rgb[i : i + 1], thermal[i : i + 1]) for i in range(rgb.shape[0])]
        return tuple(np.concatenate(parts) for parts in zip(*per_image, strict=True))

    def close(self) -> None:
        """Free the session/module (the node calls this on cleanup); idempotent."""
        if not self.closed:
            self.closed = True
            self._close()


def check_inputs(
    rgb: np.ndarray, thermal: np.ndarray, input_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Shapes must match what the engine was built for; a wrong size is a caller bug."""
    h, w = input_hw
    rgb = np.asarray(rgb)
    thermal = np.asarray(thermal)
    if rgb.ndim != 4 or rgb.shape[1:] != (3, h, w):
        raise ValueError(f"rgb_batch must be (B, 3, {h}, {w}), got {rgb.shape}")
    if thermal.ndim != 4 or thermal.shape[1:] != (1, h, w):
        raise ValueError(f"thermal_batch must be (B, 1, {h}, {w}), got {thermal.shape}")
    if rgb.shape[0] != thermal.shape[0] or rgb.shape[0] == 0:
        raise ValueError(
            f"batch sizes differ or are zero: rgb {rgb.shape}, thermal {thermal.shape}"
        )
    return (
        np.ascontiguousarray(rgb, dtype=np.float32),
        np.ascontiguousarray(thermal, dtype=np.float32),
    )
