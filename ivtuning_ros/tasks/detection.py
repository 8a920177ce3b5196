"""Detection: boxes with classes and scores, scored by COCO mAP."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ivtuning_ros.evaluation.metrics import DetectionMetric
from ivtuning_ros.postprocess import decode_detections
from ivtuning_ros.preprocess import Letterbox
from ivtuning_ros.tasks.base import VERIFY_TOLERANCE, DecodeOptions, Task
from ivtuning_ros.types import Detections, RGBTSample


class DetectionTask(Task):
    name = "detection"
    selection_metric = "map50"
    output_topics = ("label_map", "vision_detections")
    class_matching = "by_name"
    produces_boxes = True
    replay_scorable = True

    def build_head(self, in_channels, num_classes, input_size, head_cfg):
        from ivtuning_ros.model.heads.detection import DetectionHead

        return DetectionHead(
            in_channels, num_classes, input_size, head_cfg.width, head_cfg.topk, head_cfg.levels
        )

    def target(self, sample: RGBTSample, box: Letterbox) -> dict[str, Any]:
        return {
            "boxes": torch.from_numpy(box.boxes_to_input(sample.boxes).reshape(-1, 4)),
            "labels": torch.as_tensor(sample.labels, dtype=torch.int64),
        }

    def decode(self, outputs, box: Letterbox, options: DecodeOptions) -> dict[str, Any]:
        boxes, scores, class_ids = outputs[:3]
        dets = decode_detections(
            boxes,
            scores,
            class_ids,
            box,
            options.score_threshold,
            options.iou_threshold,
            options.max_detections,
        )
        return {"detections": dets}

    def metric(self, class_names: Sequence[str]) -> DetectionMetric:
        return DetectionMetric(class_names)

    def score_sample(self, metric, sample: RGBTSample, pred) -> None:
        metric.update(sample.boxes, sample.labels, pred.detections, sample.rgb.shape[:2])

    def score_target(self, metric, decoded, target) -> None:
        box: Letterbox = target["letterbox"]
        hw = tuple(int(v) for v in target["orig_hw"])
        gt = box.boxes_to_source(target["boxes"].numpy())
        metric.update(gt, target["labels"].numpy(), decoded["detections"], hw)

    def verify_error(self, got, want, precision):
        # sorted top-K scores: near-tied candidates may swap places between backends
        error = np.abs(np.sort(got[1], axis=-1) - np.sort(want[1], axis=-1)).max()
        return float(error), VERIFY_TOLERANCE[precision]

    def score_replay(self, metric, gt, truth, out) -> None:
        dets = out.detections if out.detections is not None else Detections.empty()
        metric.update(truth.boxes, truth.labels, dets, (truth.height, truth.width))
