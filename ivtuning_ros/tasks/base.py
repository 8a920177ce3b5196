"""What a task is: everything that differs between detection, segmentation and saliency.

A task owns its head factory (and through the head, its loss), its training targets, how
one image's raw outputs become a prediction, its metric and how ground truth feeds it,
the tolerance an exported engine is verified with, and which extra ROS topics carry its
results (keys of `ros/topics.py`). Nothing outside `tasks/` branches on a task's name:
it asks the task (`get_task(name)`). Tasks know no ROS: topics are named, not built.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from ivtuning_ros.preprocess import Letterbox
from ivtuning_ros.types import RGBTSample

# How far a built engine may stray from torch eager fp32 before it is refused (absolute,
# on detection scores / saliency in [0, 1]); int8 is judged by its own calibration.
VERIFY_TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2, "bf16": 5e-2, "int8": 0.25}


@dataclass(frozen=True)
class DecodeOptions:
    """Settings for turning raw outputs into results (used by box-producing tasks)."""

    score_threshold: float
    iou_threshold: float = 0.5
    max_detections: int = 100


class Task(ABC):
    name: ClassVar[str]
    selection_metric: ClassVar[str]  # the validation figure a best checkpoint is chosen on
    output_topics: ClassVar[tuple[str, ...]]  # beyond detections and overlay (ros/topics.py)
    # how a data set's classes meet the model's: mapped by name (other data sets may be
    # pooled into training), equal names in the same order, or not at all
    class_matching: ClassVar[Literal["by_name", "exact", "none"]] = "exact"
    produces_boxes: ClassVar[bool] = False  # score thresholds and tracking apply
    replay_scorable: ClassVar[bool] = False  # replay scores it against ground truth

    def check_classes(self, class_names: Sequence[str]) -> None:
        """Raise ValueError when a model config's class list does not suit the task."""
        if not class_names:
            raise ValueError(f"'class_names': a {self.name} model needs classes")

    @abstractmethod
    def build_head(
        self, in_channels: list[int], num_classes: int, input_size: tuple[int, int], head_cfg
    ) -> Any:
        """The head module: forward(features) -> outputs, loss(outputs, targets)."""

    @abstractmethod
    def target(self, sample: RGBTSample, box: Letterbox) -> dict[str, Any]:
        """Training target tensors of one sample in network-input pixels."""

    @abstractmethod
    def decode(
        self, outputs: Sequence[np.ndarray], box: Letterbox, options: DecodeOptions
    ) -> dict[str, Any]:
        """One image's raw outputs -> Prediction fields in source-image pixels."""

    @abstractmethod
    def metric(self, class_names: Sequence[str]) -> Any:
        """A fresh accumulator: update(...) per image, compute() -> figures."""

    @abstractmethod
    def score_sample(self, metric: Any, sample: RGBTSample, pred: Any) -> None:
        """Feed one predicted sample (Prediction or its fields) and its labels to `metric`."""

    @abstractmethod
    def score_target(self, metric: Any, decoded: dict[str, Any], target: dict[str, Any]) -> None:
        """Feed a decoded prediction and its training target (from `target`) to `metric`."""

    def verify_error(
        self, got: Sequence[np.ndarray], want: Sequence[np.ndarray], precision: str
    ) -> tuple[float, float]:
        """(error, limit) of an exported engine's outputs against torch eager's."""
        return float(np.abs(got[0] - want[0]).max()), VERIFY_TOLERANCE[precision]

    def score_replay(self, metric: Any, gt: Any, truth: Any, out: Any) -> None:
        """Feed one replayed result and its ground-truth record to `metric`."""
        raise ValueError(f"replay does not score {self.name} models")
