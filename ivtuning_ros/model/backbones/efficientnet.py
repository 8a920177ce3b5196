"""EfficientNet(-Lite) family: the CNN stages are the tuned layers.

The visible "patch embedding" is everything up to the first stride-4 map (stem and the
first two stages for Lite); P0 is added to its output. Prompting the stride-2 map
instead cost more than the rest of the prompter together (20k positions of 16 channels:
memory-bound ops dominate on a CPU), so prompts start at stride 4, as a ViT's start at
its 16-pixel patch grid. The infrared embedding is a light trainable stem (two strided
3x3 convs) trained from scratch, as the reference trains its infrared patch embedding;
a copy of the frozen stem and stages would double the backbone's most memory-bound
part. Each later stage (five for Lite) gets one hybrid adapter and one internal prompt
adapter after it. The prompt cascades stage to stage: stage s is
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
        self.embed_stages = max(i for i, s in enumerate(strides) if s == 4) + 1
        k = self.embed_stages
        self.embed_dim = dims[k - 1]
        self.layer_dims = dims[k:]
        self.prompt_dims = dims[k - 1 : -1]
        self.points_per_layer = 1
        # the last stage at each stride 4, 8, 16, 32 provides that feature level
        self.feature_layers = [
            max(i for i, s in enumerate(strides) if s == stride) for stride in (4, 8, 16, 32)
        ]
        self.feature_channels = [dims[i] for i in self.feature_layers]

    def embed_module(self) -> nn.Module:
        # built on demand so the frozen modules are not registered twice
        net = self.net
        return nn.Sequential(net.conv_stem, net.bn1, *net.blocks[: self.embed_stages])

    def prompt_input(self, prompt_image: torch.Tensor) -> torch.Tensor:
        return prompt_image * 2.0 - 1.0  # one channel, centred: the light stem learns the rest

    def make_prompt_embed(self) -> nn.Module:
        mid = max(8, self.embed_dim // 2)
        return nn.Sequential(
            nn.Conv2d(1, mid, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU6(inplace=True),
            nn.Conv2d(mid, self.embed_dim, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(self.embed_dim),
        ).to(memory_format=torch.channels_last)

    def embed_with(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return to_nhwc(module(x.contiguous(memory_format=torch.channels_last)))

    def forward(
        self,
        x: torch.Tensor,
        prompt_image: torch.Tensor | None = None,
        prompter: Prompter | None = None,
    ) -> list[torch.Tensor]:
        tokens, prompt = self.embed_and_prompt(x, prompt_image, prompter)
        x = to_nchw(tokens)
        outs = {self.embed_stages - 1: x}
        for i, stage in enumerate(self.net.blocks[self.embed_stages :]):
            stage_in = x
            x = self.run_frozen(stage, x)
            if prompter is not None:
                if i > 0:
                    prompt = to_nhwc(stage_in)
                x = to_nchw(prompter.layers[i](0, to_nhwc(x), prompt))
            outs[self.embed_stages + i] = x
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
