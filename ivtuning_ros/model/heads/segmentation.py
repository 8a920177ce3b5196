"""SegFormer-style all-MLP decoder: per-level linear projection to a common width,
upsampled to stride 4, concatenated, fused by a 1x1 conv, classified per pixel."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ivtuning_ros.model.heads.common import conv_bn_act

IGNORE_INDEX = 255


class SegmentationHead(nn.Module):
    def __init__(
        self,
        in_channels: list[int],
        num_classes: int,
        input_size: tuple[int, int],
        width: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.input_size = tuple(input_size)
        self.proj = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.fuse = conv_bn_act(width * len(in_channels), width, 1)
        self.drop = nn.Dropout2d(dropout)
        self.classify = nn.Conv2d(width, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        size = features[0].shape[-2:]
        maps = [
            F.interpolate(p(f), size=size, mode="bilinear", align_corners=False)
            if f.shape[-2:] != size
            else p(f)
            for p, f in zip(self.proj, features, strict=True)
        ]
        logits = self.classify(self.drop(self.fuse(torch.cat(maps, dim=1))))
        return {"seg_logits": logits}  # (B, K, H/4, W/4)

    def upsampled(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.interpolate(
            out["seg_logits"], size=self.input_size, mode="bilinear", align_corners=False
        )

    def decode(self, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return (self.upsampled(out).argmax(dim=1).to(torch.int64),)

    def loss(
        self, out: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mask = torch.stack([t["mask"].long() for t in targets])
        logits = self.upsampled(out)
        if mask.shape[-2:] != logits.shape[-2:]:
            raise ValueError(
                f"segmentation target mask {tuple(mask.shape[-2:])} is not the network input "
                f"size {tuple(logits.shape[-2:])}"
            )
        num_classes = logits.shape[1]
        bad = (mask != IGNORE_INDEX) & ((mask < 0) | (mask >= num_classes))
        if bad.any():
            raise ValueError(
                f"segmentation target: class ids {sorted(set(mask[bad].tolist()))[:8]} outside "
                f"0..{num_classes - 1} (and not {IGNORE_INDEX} = ignore)"
            )
        loss = F.cross_entropy(logits, mask, ignore_index=IGNORE_INDEX)
        if not torch.isfinite(loss):  # every pixel ignored
            loss = logits.sum() * 0.0
        return loss, {"ce": loss.detach()}
