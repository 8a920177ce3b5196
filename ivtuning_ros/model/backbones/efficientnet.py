"""EfficientNet(-Lite) family: the CNN stages are the tuned layers.

The "patch embedding" is the stem plus the first stage (a depthwise-separable conv that
keeps stride 2): its output is where P0 is added, and the trainable infrared embedding
is a copy of it. Each later stage (six for Lite) gets one hybrid adapter and one
internal prompt adapter after it. The prompt cascades stage to stage: stage s is
prompted by the output of stage s-1, resampled to stage s's resolution and channel
count inside the prompt adapter. The network runs channels-last, so the adapters'
channel-last maps are free views of the convolution outputs.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from ivtuning_ros.model.backbones.base import Backbone
from ivtuning_ros.model.prompter import Prompter, to_nchw, to_nhwc


class EfficientNetBackbone(Backbone):
    def __init__(self, net: nn.Module) -> None:
        super().__init__(net)
        net.to(memory_format=torch.channels_last)
        dims = [_out_channels(stage[-1]) for stage in net.blocks]
        strides = _stage_strides(net)
        self.embed_dim = dims[0]
        self.layer_dims = dims[1:]
        self.prompt_dims = dims[:-1]
        self.points_per_layer = 1
        # the last stage at each stride 4, 8, 16, 32 provides that feature level
        self.feature_layers = [
            max(i for i, s in enumerate(strides) if s == stride) for stride in (4, 8, 16, 32)
        ]
        self.feature_channels = [dims[i] for i in self.feature_layers]

    def embed_module(self) -> nn.Module:
        # built on demand so the frozen modules are not registered twice
        return nn.Sequential(self.net.conv_stem, self.net.bn1, self.net.blocks[0])

    def embed_with(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return to_nhwc(module(x.contiguous(memory_format=torch.channels_last)))

    def forward(
        self,
        x: torch.Tensor,
        thermal: torch.Tensor | None = None,
        prompter: Prompter | None = None,
    ) -> list[torch.Tensor]:
        tokens, prompt = self.embed_and_prompt(x, thermal, prompter)
        x = to_nchw(tokens)
        outs = [x]
        for i, stage in enumerate(self.net.blocks[1:]):
            stage_in = x
            x = self.run_frozen(stage, x)
            if prompter is not None:
                if i > 0:
                    prompt = to_nhwc(stage_in)
                x = to_nchw(prompter.layers[i](0, to_nhwc(x), prompt))
            outs.append(x)
        return [outs[i] for i in self.feature_layers]


def _out_channels(block: nn.Module) -> int:
    last = getattr(block, "conv_pwl", None) or block.conv_pw
    return last.out_channels


def _stage_strides(net: nn.Module) -> list[int]:
    stride = 2  # the stem
    out = []
    for stage in net.blocks:
        block = stage[0]
        conv = getattr(block, "conv_dw", None)
        s = conv.stride[0] if conv is not None else 1
        stride *= s
        out.append(stride)
    return out


def create(name: str, input_size: tuple[int, int], **kwargs) -> EfficientNetBackbone:
    del input_size  # any multiple of 32 works
    return EfficientNetBackbone(timm.create_model(name, pretrained=False, **kwargs))
