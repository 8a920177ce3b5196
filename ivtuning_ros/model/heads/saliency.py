"""Salient-object head: a progressive (top-down) decoder with a side output at every level
for deep supervision, trained with BCE + IoU on each side output (as the reference's
CPNet-style decoders). The finest side output is the prediction."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ivtuning_ros.model.heads.common import conv_bn_act


def iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(2, 3))
    union = (p + target - p * target).sum(dim=(2, 3))
    return (1 - (inter + 1) / (union + 1)).mean()


class SaliencyHead(nn.Module):
    def __init__(self, in_channels: list[int], input_size: tuple[int, int], width: int = 64):
        super().__init__()
        self.input_size = tuple(input_size)
        self.lateral = nn.ModuleList(conv_bn_act(c, width, 1) for c in in_channels)
        self.refine = nn.ModuleList(conv_bn_act(width, width, 3) for _ in in_channels)
        self.side = nn.ModuleList(nn.Conv2d(width, 1, 3, padding=1) for _ in in_channels)

    def forward(self, features: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        y = None
        sides = []
        for i in range(len(features) - 1, -1, -1):
            x = self.lateral[i](features[i])
            if y is not None:
                x = x + F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
            y = self.refine[i](x)
            sides.append(self.side[i](y))
        return {"side_logits": sides[::-1]}  # finest (stride 4) first

    def decode(self, out: dict[str, list[torch.Tensor]]) -> tuple[torch.Tensor, ...]:
        logits = F.interpolate(
            out["side_logits"][0], size=self.input_size, mode="bilinear", align_corners=False
        )
        return (torch.sigmoid(logits),)

    def loss(
        self, out: dict[str, list[torch.Tensor]], targets: list[dict[str, torch.Tensor]]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        gt = torch.stack(
            [t["saliency"].float().reshape(1, *t["saliency"].shape[-2:]) for t in targets]
        )
        if gt.shape[-2:] != self.input_size:
            raise ValueError(
                f"saliency target {tuple(gt.shape[-2:])} is not the network input size "
                f"{self.input_size}"
            )
        parts = {}
        total = gt.new_zeros(())
        for i, side in enumerate(out["side_logits"]):
            logits = F.interpolate(side, size=self.input_size, mode="bilinear", align_corners=False)
            bce = F.binary_cross_entropy_with_logits(logits, gt)
            iou = iou_loss(logits, gt)
            parts[f"side{i}"] = (bce + iou).detach()
            total = total + bce + iou
        return total, parts
