"""The IV-tuning prompter: the only backbone-side modules that train.

Structure (see docs and the method note): a trainable infrared patch embedding; the
Modality-Aware input prompter (visible branch: projection + hybrid conv; infrared
branch: projection + parameter-free SimAM) whose output P0 is added to the visible
tokens; and for every tuned layer of the frozen backbone, hybrid adapters and internal
prompt adapters that inject the cascaded prompt. All maps here are channel-last
(B, H, W, C), the natural layout of transformer tokens; the few convolutions work at
the low rank r in (B, r, H, W).

Parameter counts reproduce the reference (EVA02-L 8,899,652; Swin-L 6,062,788 with
ranks 8/64), which is how faithfulness to its structure is checked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def to_nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def to_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


def simam(x: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Parameter-free SimAM attention on (B, C, H, W): weighs each unit by its energy."""
    n = max(x.shape[-2] * x.shape[-1] - 1, 1)
    d = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)
    y = d / (4 * (d.sum(dim=(2, 3), keepdim=True) / n + eps)) + 0.5
    return x * torch.sigmoid(y)


class HybridConv(nn.Module):
    """Partial depthwise 3x3 on a quarter of the channels (+ residual), then a 1x1 conv
    bottleneck with BN/ReLU (+ residual): cheap local spatial mixing at rank r.

    The partial conv and its residual run as ONE depthwise conv over all r channels: the
    trainable kernels of the first quarter plus an identity tap, and a fixed kernel of 2x
    the identity for the untouched channels (x2 + x2). Same function and parameters as
    split / conv / concat / add, a quarter of the ops (which dominate at low rank).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.n_part = max(1, channels // 4)
        self.partial = nn.Conv2d(self.n_part, self.n_part, 3, padding=1, groups=self.n_part)
        self.proj1 = nn.Conv2d(channels, channels, 1)
        self.bn = nn.BatchNorm2d(channels)
        self.proj2 = nn.Conv2d(channels, channels, 1)
        identity = torch.zeros(channels, 1, 3, 3)
        identity[:, 0, 1, 1] = 1.0
        identity[self.n_part :] *= 2.0
        self.register_buffer("identity", identity, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()  # few channels: one cheap copy beats strided convolutions
        n = self.n_part
        kernel = self.identity + F.pad(self.partial.weight, (0, 0, 0, 0, 0, 0, 0, x.shape[1] - n))
        bias = F.pad(self.partial.bias, (0, x.shape[1] - n))
        x = F.conv2d(x, kernel, bias, padding=1, groups=x.shape[1])
        return self.proj2(F.relu(self.bn(self.proj1(x)))) + x


class ScaledLayerNorm(nn.Module):
    """LayerNorm followed by a per-channel scale (1) and shift (0), as the reference."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (norm(x) * w + b) * gamma + beta as one layer_norm call: one pass over the map
        weight = self.norm.weight * self.gamma
        bias = self.norm.bias * self.gamma + self.beta
        return F.layer_norm(x, self.norm.normalized_shape, weight, bias, self.norm.eps)


class HybridAdapter(nn.Module):
    """x + up(dropout(gelu(hybrid_conv(down(norm(x)))))) on a (B, H, W, C) map."""

    def __init__(self, dim: int, rank: int, dropout: float) -> None:
        super().__init__()
        self.norm = ScaledLayerNorm(dim)
        self.down = nn.Linear(dim, rank)
        self.conv = HybridConv(rank)
        self.drop = nn.Dropout(dropout)
        self.up = nn.Linear(rank, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = to_nhwc(self.conv(to_nchw(self.down(self.norm(x)))))
        return x + self.up(self.drop(F.gelu(z)))


class InternalPromptAdapter(nn.Module):
    """Turns the cascaded prompt p into an additive term for the current layer.

    [avg-pool to the layer's resolution] -> norm -> down (C_in -> r) -> SimAM -> GELU ->
    up (r -> C_out) -> * scale + bias. The pooling and C_in != C_out only occur between
    CNN stages, where the prompt comes from a finer, narrower stage.
    """

    def __init__(self, in_dim: int, out_dim: int, rank: int) -> None:
        super().__init__()
        self.norm = ScaledLayerNorm(in_dim)
        self.down = nn.Linear(in_dim, rank)
        self.up = nn.Linear(rank, out_dim)
        self.scale = nn.Parameter(torch.ones(out_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))

    def forward(self, p: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
        h, w = p.shape[1], p.shape[2]
        if (h, w) != tuple(out_hw):  # resample first: every later op runs on fewer pixels
            kh, kw = -(-h // out_hw[0]), -(-w // out_hw[1])
            p = to_nhwc(F.avg_pool2d(to_nchw(p), (kh, kw), ceil_mode=True, count_include_pad=False))
        z = to_nchw(self.down(self.norm(p)))
        z = to_nhwc(F.gelu(simam(z)))
        # up(z) * scale + bias with the scale folded into the projection: one pass
        weight = self.up.weight * self.scale[:, None]
        return F.linear(z, weight, self.up.bias * self.scale + self.bias)


class ModalityAwarePrompter(nn.Module):
    """Input prompter: visible tokens keep high frequencies (hybrid conv), infrared tokens
    are treated gently (linear projection + SimAM); their sum, projected back, is P0."""

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)  # shared by both modalities
        self.vis_proj = nn.Linear(dim, rank)
        self.vis_conv = HybridConv(rank)
        self.ir_proj = nn.Linear(dim, rank)
        self.out = nn.Linear(rank, dim)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.xavier_uniform_(p)

    def forward(self, visible: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor:
        v = self.vis_conv(to_nchw(self.vis_proj(self.norm(visible))))
        i = simam(to_nchw(self.ir_proj(self.norm(infrared))))
        return self.out(to_nhwc(v + i))


class LayerTuner(nn.Module):
    """The trainable modules of one tuned layer: `points` hybrid adapters, each followed by
    an internal prompt adapter (two per transformer block, one per CNN stage)."""

    def __init__(
        self,
        dim: int,
        prompt_dim: int,
        adapter_rank: int,
        prompt_rank: int,
        points: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.adapters = nn.ModuleList(
            HybridAdapter(dim, adapter_rank, dropout) for _ in range(points)
        )
        self.prompts = nn.ModuleList(
            InternalPromptAdapter(prompt_dim, dim, prompt_rank) for _ in range(points)
        )

    def forward(self, point: int, x: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        """x, prompt: (B, H, W, C) maps; returns the adapted, prompted x."""
        x = self.adapters[point](x)
        return x + self.prompts[point](prompt, (x.shape[1], x.shape[2]))


class Prompter(nn.Module):
    """Everything IV-tuning adds to a frozen backbone."""

    def __init__(
        self,
        prompt_embed: nn.Module,
        embed_dim: int,
        layer_dims: list[int],
        prompt_dims: list[int],
        points: int,
        input_rank: int,
        adapter_ranks: tuple[int, ...],
        prompt_ranks: tuple[int, ...],
        dropout: float,
        primary_is_visible: bool = True,
    ) -> None:
        super().__init__()
        self.prompt_embed = prompt_embed  # the prompt image's own trainable embedding
        self.input = ModalityAwarePrompter(embed_dim, input_rank)
        self.primary_is_visible = primary_is_visible
        self.layers = nn.ModuleList(
            LayerTuner(d, pd, ra, rp, points, dropout)
            for d, pd, ra, rp in zip(
                layer_dims, prompt_dims, adapter_ranks, prompt_ranks, strict=True
            )
        )

    def first_prompt(self, primary: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """P0 from the backbone's own tokens and the second stream's, each through the
        branch of its modality: the visible image keeps its detail in the conv branch and
        the infrared one goes through the light projection, whichever the backbone sees."""
        if self.primary_is_visible:
            return self.input(primary, second)
        return self.input(second, primary)
