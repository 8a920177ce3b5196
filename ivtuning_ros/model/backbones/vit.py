"""Plain ViT family (timm ViT, DeiT, EVA-02): every block is a tuned layer.

Inside each block, as the reference: x = x + Attn(LN1(x)); x = HA1(x); x = x + IPA1(p);
x = x + MLP(LN2(x)); x = HA2(x); x = x + IPA2(p). Block 0 is prompted by P0, block i by
the output of block i-1 (prefix tokens never touch the adapters). The single-scale
output becomes a four-level pyramid by resizing the outputs of the blocks at each
quarter of the depth to strides 4, 8, 16, 32 (as ViTDet-style heads do).
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from timm.models.eva import EvaBlock
from timm.models.vision_transformer import Block
from torch import nn

from ivtuning_ros.model.backbones.base import FEATURE_STRIDES, Backbone
from ivtuning_ros.model.prompter import LayerTuner, Prompter, to_nchw


class ViTBackbone(Backbone):
    def __init__(self, net: nn.Module) -> None:
        super().__init__(net)
        for blk in net.blocks:
            if not isinstance(blk, Block | EvaBlock):
                raise ValueError(
                    f"backbone block type {type(blk).__name__} is not supported by the IV-tuning "
                    "ViT wrapper (pre-norm ViT/DeiT/EVA blocks are)"
                )
        self.is_eva = isinstance(net.blocks[0], EvaBlock)
        dim = net.embed_dim
        depth = len(net.blocks)
        self.embed_dim = dim
        self.layer_dims = [dim] * depth
        self.prompt_dims = [dim] * depth
        self.points_per_layer = 2
        self.feature_blocks = [max(0, depth * q // 4 - 1) for q in (1, 2, 3, 4)]
        self.feature_channels = [dim] * 4
        self.patch = net.patch_embed.patch_size[0]
        self.grid = tuple(net.patch_embed.grid_size)

    def embed_module(self) -> nn.Module:
        return self.net.patch_embed

    def embed_with(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        tokens = module(x)  # (B, N, C)
        return tokens.reshape(x.shape[0], self.grid[0], self.grid[1], -1)

    def check_input_size(self, h: int, w: int) -> None:
        super().check_input_size(h, w)
        expected = (self.grid[0] * self.patch, self.grid[1] * self.patch)
        if (h, w) != expected:
            raise ValueError(
                f"input size {h}x{w}: this ViT backbone was built for {expected[0]}x{expected[1]} "
                "(the config's input_size)"
            )

    def _attn(self, blk: nn.Module, x: torch.Tensor, rope: torch.Tensor | None) -> torch.Tensor:
        if self.is_eva:
            a = blk.attn(blk.norm1(x), rope=rope)
            if blk.gamma_1 is not None:
                a = blk.gamma_1 * a
            return blk.drop_path1(a)
        return blk.drop_path1(blk.ls1(blk.attn(blk.norm1(x))))

    def _mlp(self, blk: nn.Module, x: torch.Tensor) -> torch.Tensor:
        m = blk.mlp(blk.norm2(x))
        if self.is_eva:
            if blk.gamma_2 is not None:
                m = blk.gamma_2 * m
            return blk.drop_path2(m)
        return blk.drop_path2(blk.ls2(m))

    def _tune(
        self, tuner: LayerTuner, point: int, x: torch.Tensor, prompt: torch.Tensor
    ) -> torch.Tensor:
        n = self.net.num_prefix_tokens
        b, _, c = x.shape
        patches = x[:, n:].reshape(b, self.grid[0], self.grid[1], c)
        patches = tuner(point, patches, prompt).reshape(b, -1, c)
        return torch.cat([x[:, :n], patches], dim=1) if n else patches

    def forward(
        self,
        x: torch.Tensor,
        prompt_image: torch.Tensor | None = None,
        prompter: Prompter | None = None,
    ) -> list[torch.Tensor]:
        tokens, prompt = self.embed_and_prompt(x, prompt_image, prompter)
        b = x.shape[0]
        x = tokens.reshape(b, -1, self.embed_dim)
        if self.is_eva:
            x, rope = self.net._pos_embed(x)
        else:
            x, rope = self.net._pos_embed(x), None
        x = self.net.norm_pre(x)
        n = self.net.num_prefix_tokens
        maps: dict[int, torch.Tensor] = {}
        for i, blk in enumerate(self.net.blocks):
            if prompter is None:
                x = blk(x, rope=rope) if self.is_eva else blk(x)
            else:
                if i > 0:
                    prompt = x[:, n:].reshape(b, self.grid[0], self.grid[1], -1)
                tuner = prompter.layers[i]
                x = self._tune(tuner, 0, x + self.run_frozen(self._attn, blk, x, rope), prompt)
                x = self._tune(tuner, 1, x + self.run_frozen(self._mlp, blk, x), prompt)
            if i in self.feature_blocks:
                maps[i] = to_nchw(x[:, n:].reshape(b, self.grid[0], self.grid[1], -1))
        h, w = self.grid[0] * self.patch, self.grid[1] * self.patch
        return [
            _resize(maps[i], (h // s, w // s))
            for i, s in zip(self.feature_blocks, FEATURE_STRIDES, strict=True)
        ]


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x.contiguous()
    if x.shape[-2] == 2 * size[0] and x.shape[-1] == 2 * size[1]:
        return F.max_pool2d(x, 2)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def create(name: str, input_size: tuple[int, int], **kwargs) -> ViTBackbone:
    net = timm.create_model(name, pretrained=False, img_size=tuple(input_size), **kwargs)
    patch = net.patch_embed.patch_size
    if input_size[0] % patch[0] or input_size[1] % patch[1]:
        raise ValueError(
            f"input_size {list(input_size)} is not a multiple of {name}'s patch size "
            f"{patch[0]} (set backbone_args.patch_size or change input_size)"
        )
    return ViTBackbone(net)


def checkpoint_filter(name: str):
    """timm's own key conversion / position-embedding resampling for this family."""
    if name.startswith("eva"):
        from timm.models.eva import checkpoint_filter_fn
    else:
        from timm.models.vision_transformer import checkpoint_filter_fn
    return checkpoint_filter_fn
