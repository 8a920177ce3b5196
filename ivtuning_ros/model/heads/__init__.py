"""Task heads (built by each task in tasks/); each has forward(features) -> dict,
loss(out, targets), decode(out) -> tuple."""

from __future__ import annotations

from ivtuning_ros.model.heads.detection import DetectionHead
from ivtuning_ros.model.heads.saliency import SaliencyHead
from ivtuning_ros.model.heads.segmentation import SegmentationHead

__all__ = ["DetectionHead", "SaliencyHead", "SegmentationHead"]
