"""Parameter and FLOP figures of a model config, computed on the meta device.

Nothing is allocated or loaded: counts depend on shapes only, so even EVA02-L presets
report in a second, and a missing weights file does not stop a size estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from ivtuning_ros.model.config import ModelConfig
from ivtuning_ros.model.ivtuning import IVTuningModel, build_model


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs (multiply and add counted separately) of one call, by torch's flop counter."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def example_pair(cfg: ModelConfig, device: str | torch.device = "cpu") -> tuple[torch.Tensor, ...]:
    h, w = cfg.input_size
    return torch.rand(1, 3, h, w, device=device), torch.rand(1, 1, h, w, device=device)


def backbone_flops(model: IVTuningModel, rgb: torch.Tensor) -> int:
    """FLOPs of the frozen backbone alone on the RGB image (the RGB-only baseline)."""
    return count_flops(lambda: model.backbone(model.backbone.normalize(rgb)))


def meta_model(cfg: ModelConfig) -> IVTuningModel:
    """The config's model with shapes only (no memory, no weights), in eval mode."""
    with torch.device("meta"):
        model = build_model(cfg)
    return model.eval()


def model_info(cfg: ModelConfig) -> dict[str, Any]:
    """Parameters, trainable share, rank schedule and FLOPs of one input pair."""
    model = meta_model(cfg)
    rgb, thermal = example_pair(cfg, "meta")
    info: dict[str, Any] = {
        "name": cfg.name,
        **model.parameter_report(),
        "backbone": cfg.backbone,
        "weights": cfg.weights,
        "task": cfg.task,
        "input_size": list(cfg.input_size),
        "flops": count_flops(lambda: model(rgb, thermal)),
        "flops_head": 0,
        "flops_rgb_backbone": backbone_flops(model, rgb),
    }
    feats = model.features(rgb, thermal)
    info["flops_head"] = count_flops(lambda: model.head(feats))
    return info
