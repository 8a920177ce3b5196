"""Real-time anchor-free detection head (FCOS-style) on a strides 8/16/32 pyramid, or
4/8/16/32 with `levels=4` (small objects: a 20 px person covers one stride-8 cell).

Neck: 1x1 laterals + top-down nearest upsampling + depthwise-separable 3x3 smoothing.
Head: shared depthwise-separable towers, per-point class logits, ltrb distances
(softplus * stride) and a centerness logit. Decoding is pure tensor arithmetic with a
fixed top-K, so the whole network exports; NMS is left to postprocess.py.

Training targets: FCOS assignment with center sampling and per-level size ranges; focal
loss for classes, GIoU loss (weighted by centerness) for boxes, BCE for centerness.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from ivtuning_ros.model.heads.common import conv_bn_act, dw_separable

LEVEL_STRIDES = (8, 16, 32)
FINE_STRIDE = 4  # the extra level of levels=4
CENTER_RADIUS = 2.5
# max ltrb distance each level is responsible for, finest first
SIZE_RANGES = ((0.0, 64.0), (64.0, 128.0), (128.0, float("inf")))
FINE_SIZE_RANGES = ((0.0, 32.0), (32.0, 64.0), (64.0, 128.0), (128.0, float("inf")))


class DetectionHead(nn.Module):
    def __init__(
        self,
        in_channels: list[int],
        num_classes: int,
        input_size: tuple[int, int],
        width: int = 64,
        topk: int = 100,
        levels: int = 3,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.input_size = tuple(input_size)
        chans = in_channels[-3:]  # strides 8, 16, 32 of the four backbone levels
        self.lateral = nn.ModuleList(conv_bn_act(c, width, 1) for c in chans)
        self.smooth = nn.ModuleList(dw_separable(width) for _ in chans)
        # the stride-4 level lives apart, so a 3-level checkpoint's tensors keep their names
        self.fine = levels == 4
        if self.fine:
            self.lateral_fine = conv_bn_act(in_channels[-4], width, 1)
            self.smooth_fine = dw_separable(width)
        self.strides = ((FINE_STRIDE,) if self.fine else ()) + LEVEL_STRIDES
        self.cls_tower = nn.Sequential(dw_separable(width), dw_separable(width))
        self.reg_tower = nn.Sequential(dw_separable(width), dw_separable(width))
        self.cls_out = nn.Conv2d(width, num_classes, 1)
        self.reg_out = nn.Conv2d(width, 4, 1)
        self.ctr_out = nn.Conv2d(width, 1, 1)
        nn.init.constant_(self.cls_out.bias, -math.log((1 - 0.01) / 0.01))  # prior p=0.01
        h, w = self.input_size
        points = sum((h // s) * (w // s) for s in self.strides)
        self.topk = min(topk, points * num_classes)
        self.size_ranges = FINE_SIZE_RANGES if self.fine else SIZE_RANGES

    def forward(self, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        feats = [lat(f) for lat, f in zip(self.lateral, features[-3:], strict=True)]
        for i in range(len(feats) - 2, -1, -1):
            feats[i] = feats[i] + F.interpolate(feats[i + 1], size=feats[i].shape[-2:])
        fine = None
        if self.fine:
            fine = self.lateral_fine(features[-4])
            fine = self.smooth_fine(fine + F.interpolate(feats[0], size=fine.shape[-2:]))
        feats = [sm(f) for sm, f in zip(self.smooth, feats, strict=True)]
        if fine is not None:
            feats.insert(0, fine)
        cls, reg, ctr, points, strides = [], [], [], [], []
        for f, s in zip(feats, self.strides, strict=True):
            h, w = f.shape[-2:]
            tc, tr = self.cls_tower(f), self.reg_tower(f)
            cls.append(self.cls_out(tc).flatten(2).transpose(1, 2))
            reg.append(F.softplus(self.reg_out(tr)).flatten(2).transpose(1, 2) * s)
            ctr.append(self.ctr_out(tr).flatten(1))
            ys = (torch.arange(h, device=f.device, dtype=f.dtype) + 0.5) * s
            xs = (torch.arange(w, device=f.device, dtype=f.dtype) + 0.5) * s
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            points.append(torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1))
            strides.append(torch.full((h * w,), float(s), device=f.device, dtype=f.dtype))
        pts = torch.cat(points)
        ltrb = torch.cat(reg, dim=1)
        boxes = torch.cat([pts - ltrb[..., :2], pts + ltrb[..., 2:]], dim=-1)
        return {
            "cls_logits": torch.cat(cls, dim=1),  # (B, P, C)
            "boxes": boxes,  # (B, P, 4) xyxy input pixels
            "ctr_logits": torch.cat(ctr, dim=1),  # (B, P)
            "points": pts,  # (P, 2)
            "strides": torch.cat(strides),  # (P,)
        }

    def decode(self, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Top-K (box, score, class) candidates per image, before NMS; fixed shapes."""
        scores = torch.sqrt(
            torch.sigmoid(out["cls_logits"]) * torch.sigmoid(out["ctr_logits"]).unsqueeze(-1)
        )
        top, idx = scores.flatten(1).topk(self.topk, dim=1)
        point = torch.div(idx, self.num_classes, rounding_mode="floor")
        class_ids = idx - point * self.num_classes
        boxes = torch.gather(out["boxes"], 1, point.unsqueeze(-1).expand(-1, -1, 4))
        h, w = self.input_size
        limit = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
        boxes = torch.minimum(boxes.clamp(min=0), limit)
        return boxes, top, class_ids.to(torch.int64)

    @torch.no_grad()
    def assign(
        self, out: dict[str, torch.Tensor], boxes: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """FCOS targets for one image: (label per point, -1 = background; box per point)."""
        pts, strides = out["points"], out["strides"]
        num_points = pts.shape[0]
        if boxes.numel() == 0:
            return (
                torch.full((num_points,), -1, dtype=torch.long, device=pts.device),
                torch.zeros((num_points, 4), device=pts.device),
            )
        x, y = pts[:, 0:1], pts[:, 1:2]  # (P, 1)
        ltrb = torch.stack(
            [x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y], dim=-1
        )  # (P, G, 4)
        inside_box = ltrb.min(dim=-1).values > 0
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        radius = strides[:, None] * CENTER_RADIUS
        near_center = ((x - cx).abs() < radius) & ((y - cy).abs() < radius)
        max_dist = ltrb.max(dim=-1).values
        lo = torch.zeros_like(strides)
        hi = torch.zeros_like(strides)
        for s, (a, b) in zip(self.strides, self.size_ranges, strict=True):
            lo = torch.where(strides == s, torch.full_like(lo, a), lo)
            hi = torch.where(strides == s, torch.full_like(hi, b), hi)
        in_range = (max_dist >= lo[:, None]) & (max_dist <= hi[:, None])
        ok = inside_box & near_center & in_range
        area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[None].expand_as(ok)
        area = torch.where(ok, area, torch.full_like(area, float("inf")))
        best_area, best = area.min(dim=1)
        target_labels = torch.where(torch.isinf(best_area), -1, labels[best])
        return target_labels, boxes[best]

    def loss(
        self, out: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        for i, t in enumerate(targets):
            boxes, labels = t["boxes"], t["labels"]
            if boxes.dim() != 2 or boxes.shape[-1] != 4 or labels.shape != boxes.shape[:1]:
                raise ValueError(
                    f"detection target {i}: boxes {tuple(boxes.shape)} must be (N, 4) and labels "
                    f"{tuple(labels.shape)} (N,)"
                )
            if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise ValueError(
                    f"detection target {i}: labels {labels.tolist()} outside "
                    f"0..{self.num_classes - 1}"
                )
        labels, tboxes = zip(
            *(self.assign(out, t["boxes"].float(), t["labels"].long()) for t in targets),
            strict=True,
        )
        labels = torch.stack(labels)  # (B, P)
        tboxes = torch.stack(tboxes)  # (B, P, 4)
        pos = labels >= 0
        num_pos = max(float(pos.sum()), 1.0)
        cls_target = torch.zeros_like(out["cls_logits"])
        cls_target[pos, labels[pos]] = 1.0
        loss_cls = sigmoid_focal_loss(out["cls_logits"], cls_target, reduction="sum") / num_pos
        if pos.any():
            pts = out["points"][None].expand_as(tboxes[..., :2])[pos]
            tb = tboxes[pos]
            left, top = pts[:, 0] - tb[:, 0], pts[:, 1] - tb[:, 1]
            right, bottom = tb[:, 2] - pts[:, 0], tb[:, 3] - pts[:, 1]
            ctr_target = torch.sqrt(
                (torch.minimum(left, right) / torch.maximum(left, right)).clamp(min=0)
                * (torch.minimum(top, bottom) / torch.maximum(top, bottom)).clamp(min=0)
            )
            giou = generalized_box_iou_loss(out["boxes"][pos], tb, reduction="none")
            loss_box = (giou * ctr_target).sum() / ctr_target.sum().clamp(min=1e-6)
            loss_ctr = (
                F.binary_cross_entropy_with_logits(
                    out["ctr_logits"][pos], ctr_target, reduction="sum"
                )
                / num_pos
            )
        else:  # keep every output in the graph so each parameter still gets a gradient
            loss_box = out["boxes"].sum() * 0.0
            loss_ctr = out["ctr_logits"].sum() * 0.0
        total = loss_cls + 2.0 * loss_box + loss_ctr
        return total, {"cls": loss_cls.detach(), "box": loss_box.detach(), "ctr": loss_ctr.detach()}
