"""Backbone registry: a timm model name selects its family by prefix.

`create_backbone` builds the family wrapper, loads the weights named by the config
(model/weights.py) reproducibly, and drops the ImageNet classifier unless asked to keep it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import timm
import torch

from ivtuning_ros.model.backbones import efficientnet, swin, vit
from ivtuning_ros.model.backbones.base import FEATURE_STRIDES, Backbone
from ivtuning_ros.model.weights import load_pretrained

__all__ = ["FAMILIES", "FEATURE_STRIDES", "Backbone", "create_backbone", "family_of"]


@dataclass(frozen=True)
class Family:
    name: str
    prefixes: tuple[str, ...]
    module: ModuleType

    def filter_fn(self, backbone: str) -> Callable | None:
        fn = getattr(self.module, "checkpoint_filter", None)
        return fn(backbone) if fn else None


FAMILIES = (
    Family("vit", ("vit_", "deit_", "deit3_", "eva02_"), vit),
    Family("swin", ("swin_base_", "swin_large_", "swin_small_", "swin_tiny_"), swin),
    Family("efficientnet", ("tf_efficientnet_lite", "efficientnet_lite"), efficientnet),
)


def supported_models() -> list[str]:
    names = timm.list_models([f"{p}*" for f in FAMILIES for p in f.prefixes])
    return [n for n in names if family_of(n, strict=False) is not None]


def family_of(name: str, strict: bool = True) -> Family | None:
    for family in FAMILIES:
        if name.startswith(family.prefixes) and (not strict or name in timm.list_models(name)):
            return family
    if not strict:
        return None
    close = difflib.get_close_matches(name, supported_models(), n=6, cutoff=0.5)
    families = {f.name: [p + "*" for p in f.prefixes] for f in FAMILIES}
    raise ValueError(
        f"unknown backbone {name!r}; supported families: {families}"
        + (f"; close matches: {close}" if close else "")
        + " (run `python -c \"import timm; print(timm.list_models('vit_*'))\"` for all names)"
    )


def create_backbone(
    name: str,
    weights: str,
    input_size: tuple[int, int],
    backbone_args: dict | None = None,
    seed: int = 0,
    keep_classifier: bool = False,
) -> tuple[Backbone, str]:
    """Build, load and return (backbone, description of the weights' source)."""
    family = family_of(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # `random` weights are reproducible from the config alone
        backbone = family.module.create(name, tuple(input_size), **(backbone_args or {}))
    if next(backbone.net.parameters()).is_meta:
        source = "meta (no weights)"
    else:
        source = load_pretrained(backbone.net, weights, family.filter_fn(name))
    if not keep_classifier:
        backbone.net.reset_classifier(0)
    return backbone, source
