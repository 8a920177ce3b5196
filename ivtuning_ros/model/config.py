"""Model presets: frozen dataclasses loaded from YAML with errors that name the bad key.

A preset (config/models/<name>.yaml) names the frozen backbone and where its weights come
from, the task head, the training mode and the prompter's per-layer rank schedule. The
schedule lists one rank per tuned layer (a transformer block, or a stage of a CNN); a
single integer means "the same rank everywhere", as in the reference code (8 and 64).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ivtuning_ros import tasks
from ivtuning_ros.paths import config_dir
from ivtuning_ros.preprocess import THERMAL_PRESETS
from ivtuning_ros.settings import from_mapping
from ivtuning_ros.types import CAMERAS

MODES = ("ivtuning", "full", "rgb_only", "thermal_only", "dual_backbone")


@dataclass(frozen=True)
class PrompterConfig:
    """Ranks of the Modality-Aware Prompter (input rank, then one rank per tuned layer)."""

    input_rank: int = 8
    adapter_ranks: int | tuple[int, ...] = 64  # hybrid adapters
    prompt_ranks: int | tuple[int, ...] = 8  # internal prompt adapters
    dropout: float = 0.1

    def ranks_for(self, num_layers: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Adapter and prompt ranks per layer, checked against the backbone's layer count."""
        return (
            _per_layer(self.adapter_ranks, num_layers, "prompter.adapter_ranks"),
            _per_layer(self.prompt_ranks, num_layers, "prompter.prompt_ranks"),
        )


@dataclass(frozen=True)
class HeadConfig:
    """Task-head settings; `width` is the neck/decoder channel count."""

    width: int = 64
    topk: int = 100  # detection: fixed number of pre-NMS candidates the export returns
    dropout: float = 0.1
    # detection: pyramid levels, 3 (strides 8/16/32) or 4 (adds stride 4, for objects
    # under ~32 px: distant people)
    levels: int = 3

    def __post_init__(self) -> None:
        if self.levels not in (3, 4):
            raise ValueError(f"'head.levels': 3 or 4, got {self.levels}")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    backbone: str  # timm model name
    weights: str  # "package:efficientnet_lite0", a file path, or "random"
    task: str
    class_names: tuple[str, ...]
    mode: str = "ivtuning"
    input_size: tuple[int, int] = (256, 320)  # H, W
    backbone_args: dict[str, Any] = field(default_factory=dict)  # extra timm kwargs
    prompter: PrompterConfig = field(default_factory=PrompterConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    thermal_norm: str = "agc8"  # preprocess.THERMAL_PRESETS name used in training
    seed: int = 0  # initialises random weights reproducibly (needed to reload `random`)
    # recompute the frozen backbone's activations in backward instead of storing them
    # (frozen modes only; a no-op in full/dual_backbone where nothing is frozen)
    grad_checkpointing: bool = False
    # full / dual_backbone: keep the backbone's pretrained BatchNorm statistics while its
    # weights train (statistics of small batches are noisy; detectron2's practice). The
    # frozen modes always keep them.
    freeze_backbone_bn: bool = False
    # which camera the frozen backbone sees in the prompted modes (ivtuning, full); the
    # other one enters through the prompter. "rgb" is the paper's layout. "thermal" suits
    # night and fog, where the thermal image carries most of the signal: the visible
    # image then reaches the prompter as luminance.
    primary_modality: str = "rgb"

    def __post_init__(self) -> None:
        if self.task not in tasks.TASKS:
            raise ValueError(f"'task': {self.task!r} is not one of {tasks.TASK_NAMES}")
        if self.mode not in MODES:
            raise ValueError(f"'mode': {self.mode!r} is not one of {MODES}")
        tasks.get_task(self.task).check_classes(self.class_names)
        h, w = self.input_size
        if h < 32 or w < 32 or h % 32 or w % 32:
            raise ValueError(
                f"'input_size': {list(self.input_size)} must be two multiples of "
                "32 (H, W), at least 32"
            )
        if self.thermal_norm not in THERMAL_PRESETS:
            raise ValueError(
                f"'thermal_norm': {self.thermal_norm!r} is not one of {sorted(THERMAL_PRESETS)}"
            )
        if not self.weights:
            raise ValueError("'weights': empty (use a file, a package: or random)")
        if self.primary_modality not in CAMERAS:
            raise ValueError(
                f"'primary_modality': {self.primary_modality!r} is not one of {CAMERAS}"
            )

    @property
    def num_classes(self) -> int:
        return max(1, len(self.class_names))

    @property
    def standalone_cameras(self) -> tuple[str, ...]:
        """The cameras whose frames the model can still run on alone (the node's
        on_timeout degraded_auto). A prompted model needs the camera its backbone sees: the
        other reaches it only through the prompter, and a thermal-primary model without
        its thermal camera scores mAP50 ~0.1 (docs/benchmarks.md, "One camera missing").
        A single-camera model needs its own; two backbones run on either."""
        if self.mode in ("rgb_only", "thermal_only"):
            return (self.mode.removesuffix("_only"),)
        if self.mode == "dual_backbone":
            return CAMERAS
        return (self.primary_modality,)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with fields changed; `prompter`/`head` dicts update only the keys given."""
        data = self.to_dict()
        for key, value in changes.items():
            if key in ("prompter", "head") and isinstance(value, dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return model_config_from_dict(data, source="override")


def _per_layer(value: int | tuple[int, ...], n: int, key: str) -> tuple[int, ...]:
    if isinstance(value, int):
        ranks = (value,) * n
    elif len(value) != n:
        raise ValueError(
            f"'{key}': {len(value)} ranks given but the backbone has {n} tuned "
            f"layers (give {n} values or one integer)"
        )
    else:
        ranks = tuple(value)
    if any(r < 1 for r in ranks):
        raise ValueError(f"'{key}': ranks must be >= 1, got {list(ranks)}")
    return ranks


def model_config_from_dict(data: dict[str, Any], source: str = "dict") -> ModelConfig:
    """A mapping -> ModelConfig; errors name `source` and the key ("model config ...")."""
    try:
        return from_mapping(ModelConfig, data)
    except ValueError as err:
        raise ValueError(f"{source}: model config: {err}") from None


def available_presets() -> list[str]:
    folder = config_dir() / "models"
    return sorted(p.stem for p in folder.glob("*.yaml"))


def load_model_config(name_or_path: str | Path) -> ModelConfig:
    """Load a preset by name (config/models/<name>.yaml) or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = config_dir() / "models" / f"{name_or_path}.yaml"
        if not path.is_file():
            raise FileNotFoundError(
                f"no model preset {str(name_or_path)!r}; presets: {available_presets()} "
                "(or give a path to a .yaml file)"
            )
    if not path.is_file():
        raise FileNotFoundError(f"model config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of model settings")
    data.setdefault("name", path.stem)
    return model_config_from_dict(data, source=str(path))
