"""Predictor: one RGB-T pair in, results in original-image pixels out.

The node, evaluation and offline replay all call `Predictor.predict`, so they share the
exact preprocessing (preprocess.prepare_pair with the checkpoint's thermal norm), engine
and postprocessing. Thresholds are plain attributes: the node changes them at run time
(parameter callbacks) without rebuilding anything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ivtuning_ros.engine.engine import Engine
from ivtuning_ros.postprocess import (
    DEFAULT_SCORE_THRESHOLD,
)
from ivtuning_ros.preprocess import Letterbox, ThermalNorm, prepare_pair
from ivtuning_ros.tasks import DecodeOptions, get_task
from ivtuning_ros.types import Detections


@dataclass(frozen=True)
class Prediction:
    """Results for one image; only the field of the engine's task is set.

    timings_ms: preprocess, inference, postprocess and total wall time in milliseconds.
    """

    letterbox: Letterbox
    detections: Detections | None = None
    mask: np.ndarray | None = None  # (H, W) uint8 class ids, original pixels
    saliency: np.ndarray | None = None  # (H, W) float32 [0, 1], original pixels
    timings_ms: dict[str, float] = field(default_factory=dict)


class Predictor:
    def __init__(
        self,
        engine: Engine,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        iou_threshold: float = 0.5,
        max_detections: int = 100,
        thermal_norm: ThermalNorm | None = None,
    ) -> None:
        """`thermal_norm` overrides the checkpoint's, e.g. for a caller that has already
        mapped thermal to [0, 1] itself (pass ThermalNorm("fixed", 0, 1))."""
        self.engine = engine
        self.task = get_task(engine.task)
        self.thermal_norm = thermal_norm or engine.thermal_norm
        self.set_thresholds(score_threshold, iou_threshold, max_detections)

    def set_thresholds(
        self,
        score_threshold: float | None = None,
        iou_threshold: float | None = None,
        max_detections: int | None = None,
    ) -> None:
        """Change detection thresholds (checked; None keeps the current value)."""
        score = self.score_threshold if score_threshold is None else float(score_threshold)
        iou = self.iou_threshold if iou_threshold is None else float(iou_threshold)
        top = self.max_detections if max_detections is None else int(max_detections)
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"score_threshold must lie in [0, 1], got {score}")
        if not 0.0 <= iou <= 1.0:
            raise ValueError(f"iou_threshold must lie in [0, 1], got {iou}")
        if top < 1:
            raise ValueError(f"max_detections must be >= 1, got {top}")
        self.score_threshold, self.iou_threshold, self.max_detections = score, iou, top

    def predict(self, rgb: np.ndarray | None, thermal: np.ndarray | None) -> Prediction:
        """rgb (H,W,3) uint8 and/or thermal (H,W) source units -> Prediction.

        A missing stream (None) is neutral-filled, as in training with modality dropout.
        """
        t0 = time.perf_counter()
        rgb_in, thermal_in, box = prepare_pair(
            rgb, thermal, self.engine.input_hw, self.thermal_norm
        )
        t1 = time.perf_counter()
        outputs = self.engine.run(rgb_in[None], thermal_in[None])
        t2 = time.perf_counter()
        first = [o[0] for o in outputs]
        options = DecodeOptions(self.score_threshold, self.iou_threshold, self.max_detections)
        result = self.task.decode(first, box, options)
        t3 = time.perf_counter()
        timings = {
            "preprocess": (t1 - t0) * 1e3,
            "inference": (t2 - t1) * 1e3,
            "postprocess": (t3 - t2) * 1e3,
            "total": (t3 - t0) * 1e3,
        }
        return Prediction(letterbox=box, timings_ms=timings, **result)
