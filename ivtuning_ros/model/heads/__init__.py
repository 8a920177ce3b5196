"""Task heads; each has forward(features) -> dict, loss(out, targets), decode(out) -> tuple."""

from __future__ import annotations

from torch import nn

from ivtuning_ros.model.heads.detection import DetectionHead
from ivtuning_ros.model.heads.saliency import SaliencyHead
from ivtuning_ros.model.heads.segmentation import SegmentationHead

__all__ = ["DetectionHead", "SaliencyHead", "SegmentationHead", "build_head"]


def build_head(
    task: str, in_channels: list[int], num_classes: int, input_size: tuple[int, int], head_cfg
) -> nn.Module:
    if task == "detection":
        return DetectionHead(
            in_channels, num_classes, input_size, head_cfg.width, head_cfg.topk, head_cfg.levels
        )
    if task == "segmentation":
        return SegmentationHead(
            in_channels, num_classes, input_size, head_cfg.width, head_cfg.dropout
        )
    if task == "saliency":
        return SaliencyHead(in_channels, input_size, head_cfg.width)
    raise ValueError(f"unknown task {task!r}")
