"""Swin family: every block is a tuned layer, prompts cascade stage to stage.

Inside each block the adapters sit after the attention and MLP residuals. Every block
of stage s is prompted by the input of stage s (the output of stage s-1 after patch
merging); stage 0 by P0. The four stage outputs are the strides 4..32 features.
"""

from __future__ import annotations

import timm
import torch
from timm.models.swin_transformer import SwinTransformerBlock
from torch import nn

from ivtuning_ros.model.backbones.base import Backbone
from ivtuning_ros.model.prompter import LayerTuner, Prompter, to_nchw


class SwinBackbone(Backbone):
    def __init__(self, net: nn.Module) -> None:
        super().__init__(net)
        dims: list[int] = []
        for stage in net.layers:
            for blk in stage.blocks:
                if type(blk) is not SwinTransformerBlock:
                    raise ValueError(
                        f"backbone block type {type(blk).__name__} is not supported by the "
                        "IV-tuning Swin wrapper (Swin v1 blocks are)"
                    )
                dims.append(blk.norm1.normalized_shape[0])
        self.embed_dim = net.patch_embed.proj.out_channels
        self.layer_dims = dims
        self.prompt_dims = dims
        self.points_per_layer = 2
        self.feature_channels = [stage.blocks[0].norm1.normalized_shape[0] for stage in net.layers]

    def embed_module(self) -> nn.Module:
        return self.net.patch_embed

    def embed_with(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return module(x)  # timm's Swin patch embedding is channel-last already

    def _block(
        self, blk: nn.Module, tuner: LayerTuner, x: torch.Tensor, p: torch.Tensor
    ) -> torch.Tensor:
        b, h, w, c = x.shape
        x = tuner(0, x + self.run_frozen(_attn_branch, blk, x), p)
        x = x.reshape(b, -1, c)
        x = x + self.run_frozen(_mlp_branch, blk, x)
        return tuner(1, x.reshape(b, h, w, c), p)

    def forward(
        self,
        x: torch.Tensor,
        prompt_image: torch.Tensor | None = None,
        prompter: Prompter | None = None,
    ) -> list[torch.Tensor]:
        x, prompt = self.embed_and_prompt(x, prompt_image, prompter)
        outs = []
        layer = 0
        for s, stage in enumerate(self.net.layers):
            x = stage.downsample(x)
            if prompter is None:
                x = stage.blocks(x)
            else:
                if s > 0:
                    prompt = x
                for blk in stage.blocks:
                    x = self._block(blk, prompter.layers[layer], x, prompt)
                    layer += 1
            outs.append(to_nchw(x).contiguous())
        return outs


def _attn_branch(blk: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return blk.drop_path1(blk._attn(blk.norm1(x)))


def _mlp_branch(blk: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return blk.drop_path2(blk.mlp(blk.norm2(x)))


def create(name: str, input_size: tuple[int, int], **kwargs) -> SwinBackbone:
    return SwinBackbone(
        timm.create_model(name, pretrained=False, img_size=tuple(input_size), **kwargs)
    )


def checkpoint_filter(name: str):
    from timm.models.swin_transformer import checkpoint_filter_fn

    return checkpoint_filter_fn
