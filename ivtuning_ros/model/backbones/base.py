"""What every backbone family provides to the IV-tuning model.

A family wraps a timm model (kept whole, so its own weights and classifier stay usable)
and runs it layer by layer, letting a `Prompter` act inside: after the embedding (P0),
and at each tuned layer (transformer block or CNN stage). It returns four feature maps
(B, C, H/s, W/s) at strides 4, 8, 16 and 32 for the heads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ivtuning_ros.model.prompter import Prompter

FEATURE_STRIDES = (4, 8, 16, 32)


class Backbone(nn.Module):
    """Base class; subclasses set the attributes below in __init__ and implement
    `embed_with` and `forward`."""

    net: nn.Module
    embed_dim: int  # channels of the embedding (where P0 is added)
    layer_dims: list[int]  # output channels of each tuned layer
    prompt_dims: list[int]  # channels of the prompt each tuned layer receives
    points_per_layer: int  # adapter + prompt pairs per tuned layer
    feature_channels: list[int]  # channels of the four returned maps

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.checkpoint_frozen = False
        cfg = getattr(net, "pretrained_cfg", {}) or {}
        mean = torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406)), dtype=torch.float32)
        std = torch.tensor(cfg.get("std", (0.229, 0.224, 0.225)), dtype=torch.float32)
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)

    def run_frozen(self, fn: Callable[..., torch.Tensor], *args: object) -> torch.Tensor:
        """Call a frozen piece of the backbone; with `checkpoint_frozen` (set by the model
        in training), keep none of its inner activations for backward and recompute them
        instead (weights frozen and BN in eval mode: exact, without side effects)."""
        if self.checkpoint_frozen and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    @property
    def num_layers(self) -> int:
        return len(self.layer_dims)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] images -> the backbone's own input statistics; 1 channel is repeated."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std

    def prompt_input(self, prompt_image: torch.Tensor) -> torch.Tensor:
        """What the prompt embedding reads: by default the [0, 1] one-channel prompt image
        repeated to three channels with the backbone's statistics, the input of the frozen
        embedding it is copied from."""
        return self.normalize(prompt_image)

    def embed_module(self) -> nn.Module:
        """The frozen module that turns an image into the first token map."""
        raise NotImplementedError

    def make_prompt_embed(self) -> nn.Module:
        """A trainable copy of the embedding for the prompt image, started from the
        pretrained weights (same shape, so its tokens live in the backbone's space)."""
        module = copy.deepcopy(self.embed_module())
        for p in module.parameters():
            p.requires_grad_(True)
        return module

    def embed_with(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Run an embedding module on a normalised image -> (B, H, W, C) map."""
        raise NotImplementedError

    def embed_and_prompt(
        self, x: torch.Tensor, prompt_image: torch.Tensor | None, prompter: Prompter | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Embed the primary image; with a prompter, add P0 from both images.
        Returns the (B, H, W, C) token map and the first prompt (None without prompter)."""
        tokens = self.embed_with(self.embed_module(), x)
        if prompter is None:
            return tokens, None
        if prompt_image is None:
            raise ValueError("IV-tuning needs the prompt image (the second camera) as well")
        second = self.embed_with(prompter.prompt_embed, self.prompt_input(prompt_image))
        p0 = prompter.first_prompt(tokens, second)
        return tokens + p0, p0

    def check_input_size(self, h: int, w: int) -> None:
        """Raise a clear error for a spatial size this backbone cannot take."""
        if h % 32 or w % 32:
            raise ValueError(f"input size {h}x{w}: height and width must be multiples of 32")

    def forward(
        self,
        x: torch.Tensor,
        prompt_image: torch.Tensor | None = None,
        prompter: Prompter | None = None,
    ) -> list[torch.Tensor]:
        """x: the normalised primary image (B, 3, H, W); with a prompter, prompt_image is
        the other camera's [0, 1] one-channel image (B, 1, H, W), the thermal image or the
        visible luminance (the prompter knows which: `primary_is_visible`). Returns the
        four feature maps (strides 4, 8, 16, 32)."""
        raise NotImplementedError

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The timm model's own ImageNet classifier on a normalised image (a check that
        the frozen weights are the pretrained ones)."""
        return self.net(x)
