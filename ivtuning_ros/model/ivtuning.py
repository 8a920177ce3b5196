"""IVTuningModel: a frozen backbone + the IV-tuning prompter + a task head.

One config switch (`mode`) gives the comparisons the paper makes, on the same code:
- ivtuning: frozen backbone (requires_grad False, BN statistics fixed), prompter and
  head train. No weight gradients or optimizer state exist for the frozen weights.
  The backbone sees the RGB image and the prompter the thermal one (the paper's
  layout), or with `primary_modality: thermal` the other way round.
- full: the same network, everything trains (the full fine-tuning baseline).
- rgb_only / thermal_only: frozen backbone on one modality, head trains.
- dual_backbone: the conventional two-stream design, two backbone copies (RGB and
  thermal) fused per level by 1x1 convs; everything trains.
Inputs are rgb (B,3,H,W) and thermal (B,1,H,W) in [0, 1]; the model applies the
backbone's own mean/std.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ivtuning_ros import tasks
from ivtuning_ros.model.backbones import Backbone, create_backbone
from ivtuning_ros.model.config import ModelConfig
from ivtuning_ros.model.prompter import Prompter

FROZEN_MODES = ("ivtuning", "rgb_only", "thermal_only")
PROMPTED_MODES = ("ivtuning", "full")  # the modes with a prompter (and a second stream)


class IVTuningModel(nn.Module):
    def __init__(
        self,
        cfg: ModelConfig,
        backbone: Backbone,
        thermal_backbone: Backbone | None = None,
        weights_source: str = "",
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.weights_source = weights_source
        self.grad_checkpointing = False
        self.backbone = backbone
        self.prompter: Prompter | None = None
        self.thermal_backbone = thermal_backbone
        self.fusion: nn.ModuleList | None = None
        if cfg.mode in PROMPTED_MODES:
            adapter_ranks, prompt_ranks = cfg.prompter.ranks_for(backbone.num_layers)
            self.prompter = Prompter(
                backbone.make_prompt_embed(),
                backbone.embed_dim,
                backbone.layer_dims,
                backbone.prompt_dims,
                backbone.points_per_layer,
                cfg.prompter.input_rank,
                adapter_ranks,
                prompt_ranks,
                cfg.prompter.dropout,
                primary_is_visible=cfg.primary_modality == "rgb",
            )
        if cfg.mode == "dual_backbone":
            if thermal_backbone is None:
                raise ValueError("dual_backbone mode needs a second (thermal) backbone")
            self.fusion = nn.ModuleList(nn.Conv2d(2 * c, c, 1) for c in backbone.feature_channels)
        self.head = tasks.get_task(cfg.task).build_head(
            backbone.feature_channels, cfg.num_classes, cfg.input_size, cfg.head
        )
        if self.frozen:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    @property
    def frozen(self) -> bool:
        return self.cfg.mode in FROZEN_MODES

    def frozen_prefixes(self) -> tuple[str, ...]:
        """state_dict prefixes that never train (and are not stored in checkpoints)."""
        return ("backbone.",) if self.frozen else ()

    def train(self, mode: bool = True) -> IVTuningModel:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()  # frozen BN keeps its pretrained statistics
        elif self.cfg.freeze_backbone_bn:
            for backbone in [b for b in (self.backbone, self.thermal_backbone) if b is not None]:
                for m in backbone.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
        # recompute only while training: inference and export run the plain graph
        self.backbone.checkpoint_frozen = mode and self.grad_checkpointing
        return self

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the frozen backbone's layers in backward instead of storing their
        activations: gradients still reach every prompt, at about one more backbone
        forward per step. Only for frozen modes (a training backbone's BN statistics
        would be updated twice)."""
        if enable and not self.frozen:
            raise ValueError(
                f"gradient checkpointing of the frozen backbone needs a frozen mode "
                f"(ivtuning, rgb_only, thermal_only), not {self.cfg.mode!r}"
            )
        self.grad_checkpointing = enable
        self.backbone.checkpoint_frozen = enable and self.training

    def check_inputs(self, rgb: torch.Tensor, thermal: torch.Tensor) -> None:
        """Clear errors for the shapes the node or a data loader could get wrong."""
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ValueError(f"rgb must be (B, 3, H, W), got {tuple(rgb.shape)}")
        if thermal.dim() != 4 or thermal.shape[1] != 1:
            raise ValueError(f"thermal must be (B, 1, H, W), got {tuple(thermal.shape)}")
        if rgb.shape[0] != thermal.shape[0] or rgb.shape[2:] != thermal.shape[2:]:
            raise ValueError(
                f"rgb {tuple(rgb.shape)} and thermal {tuple(thermal.shape)} differ in batch or "
                "spatial size (resize/align them first)"
            )
        if not rgb.is_floating_point() or not thermal.is_floating_point():
            raise ValueError(
                f"rgb and thermal must be float tensors in [0, 1], got {rgb.dtype}, {thermal.dtype}"
            )
        h, w = rgb.shape[2:]
        if (h, w) != tuple(self.cfg.input_size):
            raise ValueError(
                f"input size {h}x{w} is not the model's input_size "
                f"{self.cfg.input_size[0]}x{self.cfg.input_size[1]} (letterbox it first)"
            )
        self.backbone.check_input_size(h, w)

    def features(self, rgb: torch.Tensor, thermal: torch.Tensor) -> list[torch.Tensor]:
        mode = self.cfg.mode
        if mode in PROMPTED_MODES:
            # roles: the primary image the frozen backbone sees, the prompt image the
            # prompter adds (which camera is which is the config's primary_modality)
            if self.cfg.primary_modality == "thermal":
                primary, prompt_image = thermal, luminance(rgb)
            else:
                primary, prompt_image = rgb, thermal
            return self.backbone(self.backbone.normalize(primary), prompt_image, self.prompter)
        if mode == "rgb_only":
            return self.backbone(self.backbone.normalize(rgb))
        if mode == "thermal_only":
            return self.backbone(self.backbone.normalize(thermal))
        fr = self.backbone(self.backbone.normalize(rgb))
        ft = self.thermal_backbone(self.thermal_backbone.normalize(thermal))
        return [
            fuse(torch.cat([a, b], dim=1)) for fuse, a, b in zip(self.fusion, fr, ft, strict=True)
        ]

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor) -> dict[str, Any]:
        self.check_inputs(rgb, thermal)
        return self.head(self.features(rgb, thermal))

    def loss(
        self, outputs: dict[str, Any], targets: list[dict[str, torch.Tensor]]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its named parts; targets are in network-input pixels."""
        return self.head.loss(outputs, targets)

    def inference_module(self) -> InferenceModule:
        """Exportable module: forward(rgb, thermal) -> fixed-shape tuple (puts self in eval)."""
        self.eval()
        return InferenceModule(self).eval()

    def parameter_report(self) -> dict[str, Any]:
        """Parameter counts; the share is (trainable non-head) / (backbone parameters)."""

        def count(module: nn.Module | None, trainable: bool | None = None) -> int:
            if module is None:
                return 0
            return sum(
                p.numel()
                for p in module.parameters()
                if trainable is None or p.requires_grad == trainable
            )

        backbone = count(self.backbone) + count(self.thermal_backbone)
        trainable = count(self, True)
        head = count(self.head, True)
        adapter_ranks, prompt_ranks = (
            self.cfg.prompter.ranks_for(self.backbone.num_layers)
            if self.prompter is not None
            else ((), ())
        )
        return {
            "mode": self.cfg.mode,
            "total": count(self),
            "trainable": trainable,
            "backbone_params": backbone,
            "prompter": count(self.prompter),
            "head": count(self.head),
            "trainable_backbone_side": trainable - head,
            "trainable_share_of_backbone": (trainable - head) / max(backbone, 1),
            "tuned_layers": self.backbone.num_layers,
            "input_rank": self.cfg.prompter.input_rank if self.prompter is not None else None,
            "adapter_ranks": list(adapter_ranks),
            "prompt_ranks": list(prompt_ranks),
        }


class InferenceModule(nn.Module):
    """rgb, thermal -> the task's fixed-shape outputs (see docs/architecture.md)."""

    def __init__(self, model: IVTuningModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model.head.decode(self.model(rgb, thermal))


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) BT.601 luma: the visible image as the
    prompter's one-channel stream when the backbone sees the thermal image."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype, device=rgb.device)
    return (rgb * weights.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)


def build_model(cfg: ModelConfig) -> IVTuningModel:
    """Build the model of a config, loading the frozen weights from their source.

    Under `with torch.device("meta")` nothing is allocated or loaded (parameter counts)."""
    kwargs = dict(
        name=cfg.backbone,
        weights=cfg.weights,
        input_size=cfg.input_size,
        backbone_args=cfg.backbone_args,
        seed=cfg.seed,
    )
    backbone, source = create_backbone(**kwargs)
    thermal = create_backbone(**kwargs)[0] if cfg.mode == "dual_backbone" else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 1)  # trainable modules start the same for a given seed
        model = IVTuningModel(cfg, backbone, thermal, source)
    if cfg.grad_checkpointing and model.frozen:
        model.set_grad_checkpointing(True)
    return model
