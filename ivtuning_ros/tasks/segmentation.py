"""Semantic segmentation: a class id per pixel, scored by mIoU."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from ivtuning_ros.data.formats.common import DatasetError
from ivtuning_ros.evaluation.metrics import SegmentationMetric
from ivtuning_ros.postprocess import decode_mask
from ivtuning_ros.preprocess import Letterbox
from ivtuning_ros.tasks.base import DecodeOptions, Task
from ivtuning_ros.types import RGBTSample

# Segmentation is judged by the share of pixels whose class id differs from torch eager's:
# reduced precision flips some pixels on class boundaries.
VERIFY_PIXEL_MISMATCH = {"fp32": 0.01, "fp16": 0.05, "bf16": 0.05, "int8": 0.05}


class SegmentationTask(Task):
    name = "segmentation"
    selection_metric = "miou"
    output_topics = ("mask", "mask_color", "label_map")
    replay_scorable = True

    def build_head(self, in_channels, num_classes, input_size, head_cfg):
        from ivtuning_ros.model.heads.segmentation import SegmentationHead

        return SegmentationHead(
            in_channels, num_classes, input_size, head_cfg.width, head_cfg.dropout
        )

    def target(self, sample: RGBTSample, box: Letterbox) -> dict[str, Any]:
        if sample.mask is None:
            raise DatasetError(f"sample {sample.name!r} has no segmentation mask")
        m = box.apply(sample.mask, 255, cv2.INTER_NEAREST)
        return {"mask": torch.from_numpy(m.astype(np.int64))}

    def decode(self, outputs, box: Letterbox, options: DecodeOptions) -> dict[str, Any]:
        return {"mask": decode_mask(outputs[0], box)}

    def metric(self, class_names: Sequence[str]) -> SegmentationMetric:
        return SegmentationMetric(class_names)

    def score_sample(self, metric, sample: RGBTSample, pred) -> None:
        if sample.mask is None:
            raise ValueError(f"{sample.name}: no label mask to evaluate segmentation on")
        metric.update(pred.mask, sample.mask)

    def score_target(self, metric, decoded, target) -> None:
        box: Letterbox = target["letterbox"]
        gt = box.map_to_source(target["mask"].numpy().astype(np.uint8), cv2.INTER_NEAREST)
        metric.update(decoded["mask"], gt)

    def verify_error(self, got, want, precision):
        return float(np.mean(got[0] != want[0])), VERIFY_PIXEL_MISMATCH[precision]

    def score_replay(self, metric, gt, truth, out) -> None:
        if out.mask is None:
            raise ValueError("segmentation replay needs the node's class-id mask output")
        metric.update(out.mask, gt.load_mask(truth))
