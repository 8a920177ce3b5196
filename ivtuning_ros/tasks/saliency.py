"""Salient object detection: a [0, 1] map of what stands out, scored by S-measure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from ivtuning_ros.data.formats.common import DatasetError
from ivtuning_ros.evaluation.metrics import SaliencyMetric
from ivtuning_ros.postprocess import decode_saliency
from ivtuning_ros.preprocess import Letterbox
from ivtuning_ros.tasks.base import DecodeOptions, Task
from ivtuning_ros.types import RGBTSample


class SaliencyTask(Task):
    name = "saliency"
    selection_metric = "s_measure"
    output_topics = ("saliency",)
    class_matching = "none"

    def check_classes(self, class_names: Sequence[str]) -> None:
        if len(class_names) not in (0, 1):
            raise ValueError("'class_names': saliency takes at most one name")

    def build_head(self, in_channels, num_classes, input_size, head_cfg):
        from ivtuning_ros.model.heads.saliency import SaliencyHead

        return SaliencyHead(in_channels, input_size, head_cfg.width)

    def target(self, sample: RGBTSample, box: Letterbox) -> dict[str, Any]:
        if sample.saliency is None:
            raise DatasetError(f"sample {sample.name!r} has no saliency map")
        sal = box.apply(sample.saliency.astype(np.float32), 0.0, cv2.INTER_LINEAR)
        return {"saliency": torch.from_numpy(sal[None])}

    def decode(self, outputs, box: Letterbox, options: DecodeOptions) -> dict[str, Any]:
        return {"saliency": decode_saliency(outputs[0], box)}

    def metric(self, class_names: Sequence[str]) -> SaliencyMetric:
        return SaliencyMetric()

    def score_sample(self, metric, sample: RGBTSample, pred) -> None:
        if sample.saliency is None:
            raise ValueError(f"{sample.name}: no saliency mask to evaluate saliency on")
        metric.update(pred.saliency, sample.saliency)

    def score_target(self, metric, decoded, target) -> None:
        box: Letterbox = target["letterbox"]
        gt = box.map_to_source(target["saliency"].numpy()[0], cv2.INTER_LINEAR)
        metric.update(decoded["saliency"], gt)
