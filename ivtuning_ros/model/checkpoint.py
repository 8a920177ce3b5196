"""IV-tuning checkpoints: safetensors holding only what trained.

A checkpoint stores the trainable tensors (prompter, head, and any BN statistics of
those), the model config as JSON, a SHA-256 of the frozen backbone weights, the thermal
normalisation used in training and free metadata. Loading rebuilds the model from the
config, re-loads the frozen weights from their own source (package or file), checks the
hash so a checkpoint is never silently combined with different frozen weights, then
loads the trainable tensors. Files are written atomically (temp file + rename) and read
without pickle.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ivtuning_ros.model.config import ModelConfig, model_config_from_dict
from ivtuning_ros.model.ivtuning import PROMPTED_MODES, IVTuningModel, build_model
from ivtuning_ros.model.weights import check_state_fits
from ivtuning_ros.preprocess import THERMAL_PRESETS, ThermalNorm

FORMAT = "ivtuning_ros.checkpoint"
# 2: the input prompter takes each camera through the branch of its modality. A version 1
# checkpoint of a thermal-primary model fed the thermal tokens to the visible branch; its
# RGB-primary ones are unchanged and still load.
FORMAT_VERSION = "2"


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    config: ModelConfig
    thermal_norm: ThermalNorm
    frozen_hash: str
    weights_source: str
    metadata: dict[str, Any]

    @property
    def score_threshold(self) -> float | None:
        """The detection score with the best F1 on the validation split the checkpoint was
        selected on: where to cut for users of the boxes (None when not recorded)."""
        validation = self.metadata.get("validation")
        value = validation.get("best_f1_threshold") if isinstance(validation, dict) else None
        return None if value is None else float(value)


# Tensor names of earlier checkpoints: the prompt image's embedding was `thermal_embed`,
# even in thermal-primary models where it embeds the visible image.
RENAMED_KEYS = (("prompter.thermal_embed.", "prompter.prompt_embed."),)


def upgrade_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A saved state with earlier tensor names renamed to today's (RENAMED_KEYS)."""
    out = {}
    for key, value in state.items():
        for old, new in RENAMED_KEYS:
            if key.startswith(old):
                key = new + key[len(old) :]
        out[key] = value
    return out


def trainable_state_dict(model: IVTuningModel) -> dict[str, torch.Tensor]:
    """Every state entry outside the frozen parts (parameters and their BN buffers)."""
    frozen = model.frozen_prefixes()
    return {
        k: v.detach().cpu().contiguous()
        for k, v in model.state_dict().items()
        if not k.startswith(frozen)
    }


def frozen_state_hash(model: IVTuningModel) -> str:
    """SHA-256 over the frozen tensors (names, shapes, dtypes and bytes), in name order."""
    frozen = model.frozen_prefixes()
    digest = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        if frozen and k.startswith(frozen):
            t = v.detach().cpu().contiguous()
            digest.update(f"{k}:{tuple(t.shape)}:{t.dtype}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(
    path: str | Path,
    model: IVTuningModel,
    metadata: dict[str, Any] | None = None,
    thermal_norm: ThermalNorm | None = None,
) -> Path:
    """Write the checkpoint atomically; `thermal_norm` defaults to the config's preset."""
    from safetensors.torch import save_file

    path = Path(path)
    norm = thermal_norm or THERMAL_PRESETS[model.cfg.thermal_norm]
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.cfg.to_json(),
        "frozen_hash": frozen_state_hash(model),
        "weights_source": model.weights_source,
        "thermal_norm": json.dumps(dataclasses.asdict(norm)),
        "metadata": json.dumps(metadata or {}, sort_keys=True, default=str),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(trainable_state_dict(model), tmp, metadata=header)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _finite(t: torch.Tensor) -> bool:
    return not t.is_floating_point() or bool(torch.isfinite(t).all())


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    """The checkpoint's header (config, thermal norm, metadata) without building a model."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        near = (
            sorted(str(p) for p in path.parent.glob("*.safetensors"))
            if path.parent.is_dir()
            else []
        )
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; checkpoints beside it: {near or 'none'}"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            bad = next((k for k in f.keys() if not _finite(f.get_tensor(k))), None)  # noqa: SIM118
    except Exception as err:
        raise ValueError(f"checkpoint {path} is not a readable safetensors file: {err}") from None
    if bad is not None:
        raise ValueError(
            f"checkpoint {path}: tensor {bad!r} holds NaN or infinite values (a diverged "
            "training run?); every backend refuses it"
        )
    if header.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} is not an ivtuning_ros checkpoint (no header)")
    version = header.get("format_version")
    if version not in (FORMAT_VERSION, "1"):
        raise ValueError(
            f"checkpoint {path} has format version {version}, this code reads version "
            f"{FORMAT_VERSION}"
        )
    try:
        cfg = model_config_from_dict(json.loads(header["config"]), source=f"{path} config")
        norm = ThermalNorm(**json.loads(header["thermal_norm"]))
        metadata = json.loads(header["metadata"])
        frozen_hash = header["frozen_hash"]
    except (KeyError, json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"checkpoint {path} has a damaged header: {err!r}") from None
    if version == "1" and cfg.mode in PROMPTED_MODES and cfg.primary_modality != "rgb":
        raise ValueError(
            f"checkpoint {path} (format 1) is a {cfg.primary_modality}-primary model from before "
            "the input prompter took each camera through its own modality's branch: its "
            "weights no longer fit; retrain it"
        )
    return CheckpointInfo(path, cfg, norm, frozen_hash, header.get("weights_source", ""), metadata)


def load_checkpoint(path: str | Path) -> tuple[IVTuningModel, CheckpointInfo]:
    """Rebuild the model, verify its frozen weights and load the trained tensors."""
    from safetensors.torch import load_file

    info = read_checkpoint_info(path)
    model = build_model(info.config)
    actual = frozen_state_hash(model)
    if actual != info.frozen_hash:
        raise ValueError(
            f"checkpoint {info.path}: the frozen backbone weights from "
            f"{info.config.weights!r} differ from those it was trained with "
            f"(hash {actual[:12]} != {info.frozen_hash[:12]}); use the same weights"
        )
    try:
        state = upgrade_keys(load_file(str(info.path), device="cpu"))
    except Exception as err:
        raise ValueError(f"checkpoint {info.path}: tensors cannot be read: {err}") from None
    check_state_fits(
        state,
        trainable_state_dict(model),
        f"checkpoint {info.path}",
        "fit its own config",
        "the model",
    )
    model.load_state_dict(state, strict=False)
    model.eval()
    return model, info


# per-class tensors of the heads: their rows are matched to the new classes by name
CLASS_ROWS = ("head.cls_out.weight", "head.cls_out.bias")


def init_from_checkpoint(model: IVTuningModel, path: str | Path) -> dict[str, Any]:
    """Start `model` from another checkpoint's trained weights (fine-tuning): every
    trainable tensor whose name and shape match is copied; the class rows of the head
    are copied by class name, so a model with other classes keeps what it shares. The
    frozen backbone must be the same. Returns what was and was not taken."""
    info = read_checkpoint_info(path)
    if info.frozen_hash != frozen_state_hash(model):
        raise ValueError(
            f"init_checkpoint {path}: its frozen backbone differs from this model's "
            f"({info.config.backbone}, {info.config.weights})"
        )
    from safetensors.torch import load_file

    source = upgrade_keys(load_file(str(info.path), device="cpu"))
    own = trainable_state_dict(model)
    old_names = [n.lower() for n in info.config.class_names]
    new_names = [n.lower() for n in model.cfg.class_names]
    rows = [(new_names.index(n), old_names.index(n)) for n in new_names if n in old_names]
    taken, skipped = {}, []
    for key, target in own.items():
        src = source.get(key)
        if src is None:
            skipped.append(key)
        elif key in CLASS_ROWS and src.shape[1:] == target.shape[1:] and rows:
            value = target.clone()
            for new, old in rows:
                value[new] = src[old]
            taken[key] = value
        elif src.shape == target.shape:
            taken[key] = src
        else:
            skipped.append(key)
    model.load_state_dict(taken, strict=False)
    return {
        "checkpoint": str(path),
        "tensors_loaded": len(taken),
        "tensors_skipped": skipped,
        "classes_carried": [model.cfg.class_names[new] for new, _ in rows],
    }
