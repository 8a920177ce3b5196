"""Training configuration: one YAML file -> frozen, validated dataclasses.

Every key is checked: an unknown or missing key, a wrong type or a bad value raises a
ValueError naming its dotted path (e.g. ``train.lr``), before any data or model loads.

    model:   {preset: NAME_OR_PATH, overrides: {mode: full}}   # overrides are optional
    data:
      train: {format: FORMAT, root: DIR, split: null}          # a dataset on disk, or
      train: {synthetic: {conditions: [clear_night], count: 200, seed: 0}}
      val:   {fraction: 0.15}            # carved from train (seeded), or its own source
      test:  null                        # optional; reported at the end, never selected on
      # or parts of one data set cut by contiguous name blocks (data/splits.py):
      # train: {format: msrs, root: ${IVTUNING_REAL_DATA}, split: train+test, blocks: train}
      # block_split: {block: 12, val: 0.15, test: 0.25, gap: 1}
    train:   {epochs, batch_size, lr, weight_decay, ...}   # see TrainSection
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ivtuning_ros.data.conditions import get_condition
from ivtuning_ros.data.scene import check_zoom, parse_thermal_optics
from ivtuning_ros.data.splits import PARTS, BlockSplit
from ivtuning_ros.model.config import ModelConfig, load_model_config
from ivtuning_ros.postprocess import AP_SCORE_THRESHOLD
from ivtuning_ros.settings import from_mapping, to_plain


@dataclass(frozen=True)
class ModelSection:
    """A model preset plus top-level overrides of it (e.g. ``{mode: full}``), checked by
    the model's own config loader so that errors name the overridden key."""

    preset: str  # config/models/<preset>.yaml or a path to a model YAML
    overrides: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> ModelConfig:
        cfg = load_model_config(self.preset)
        return cfg.replace(**self.overrides) if self.overrides else cfg


@dataclass(frozen=True)
class SyntheticSpec:
    """Night/fog scenes rendered on the fly (deterministic by seed) into the run folder."""

    conditions: tuple[str, ...]
    count: int
    seed: int = 0
    size: tuple[int, ...] = (320, 256)  # width, height of the rendered images
    zoom: float = 1.0  # focal length multiplier: > 1 is a longer lens, bigger objects
    thermal_optics: str = "fixed"  # or "varied": the thermal camera's sharpness per scene

    def __post_init__(self) -> None:
        if not self.conditions:
            raise ValueError("conditions: name at least one condition")
        if self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")
        for name in self.conditions:
            get_condition(name)  # raises naming the valid conditions
        if len(self.size) != 2 or min(self.size) < 32:
            raise ValueError(f"size must be [width, height], each >= 32, got {list(self.size)}")
        check_zoom(self.zoom)
        parse_thermal_optics(self.thermal_optics)


@dataclass(frozen=True)
class SourceSection:
    """One split: a dataset folder (format + root [+ split] [+ blocks]), synthetic
    scenes, or (for val/test) a seeded `fraction` held out of the training source.
    `root` may use ``${IVTUNING_REAL_DATA}`` / ``${VAR:-default}`` (data/real.py)."""

    format: str | None = None
    root: str | None = None
    split: str | None = None
    synthetic: SyntheticSpec | None = None
    fraction: float | None = None
    blocks: str | None = None  # train | val | test: this part of DataSection.block_split
    limit: int | None = None  # only the first N pairs (quick checks)
    group: str | None = None  # only pairs of this group of the data set (MSRS: day | night)
    # a node parameters YAML whose thermal_crop / thermal_affine / thermal_homography map
    # this source's thermal images onto the RGB grid (`ivtuning calibrate` writes one)
    thermal_geometry: str | None = None

    def __post_init__(self) -> None:
        kinds = [self.root is not None, self.synthetic is not None, self.fraction is not None]
        if sum(kinds) != 1:
            raise ValueError("give exactly one of root (+ format), synthetic, or fraction")
        if self.root is not None and self.format is None:
            raise ValueError(f"root {self.root!r} needs a format")
        if self.fraction is not None and not 0.0 < self.fraction < 1.0:
            raise ValueError(f"fraction must lie in (0, 1), got {self.fraction}")
        if self.group is not None and self.root is None:
            raise ValueError("group: only a data set folder (root) has groups")
        if self.thermal_geometry is not None and self.root is None:
            raise ValueError("thermal_geometry: only a data set folder (root) is mapped")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.blocks is not None:
            if self.root is None:
                raise ValueError("blocks: only a data set folder (root) can be cut by blocks")
            if self.blocks not in PARTS:
                raise ValueError(f"blocks: {self.blocks!r} is not one of {', '.join(PARTS)}")


@dataclass(frozen=True)
class DataSection:
    train: SourceSection
    val: SourceSection
    test: SourceSection | None = None
    split_seed: int = 0  # the permutation that carves val/test fractions out of train
    skip_bad: bool = False  # count and skip unreadable pairs instead of stopping
    augment: bool = True  # random crop + flip of training pairs (data.dataset.augment_sample)
    augment_min_crop: float = 0.8  # smallest crop side (a share of the image): zoom up to 1/x
    augment_max_zoom_out: float = 1.0  # > 1: the other half of the pairs zoom out up to x
    cache_dir: str | None = None  # where synthetic sources are rendered (default: user cache)
    block_split: BlockSplit = field(default_factory=BlockSplit)  # for sources with blocks:
    # more training sources, pooled with train (detection: their classes are matched to
    # the model's by name, boxes of classes it lacks dropped), e.g. synthetic scenes
    # beside real ones
    train_extra: tuple[SourceSection, ...] = ()

    def __post_init__(self) -> None:
        if self.train.fraction is not None:
            raise ValueError("train: a fraction only makes sense for val and test")
        if self.train.blocks is not None and any(
            s is not None and s.fraction is not None for s in (self.val, self.test)
        ):
            raise ValueError("a fraction cannot be carved out of a block-split train part")
        fractions = sum(s.fraction or 0.0 for s in (self.val, self.test) if s is not None)
        if fractions >= 1.0:
            raise ValueError(f"val + test fractions leave no training data ({fractions})")
        if any(src.fraction is not None for src in self.train_extra):
            raise ValueError("train_extra: a fraction only makes sense for val and test")
        if not 0.0 < self.augment_min_crop <= 1.0:
            raise ValueError(f"augment_min_crop must lie in (0, 1], got {self.augment_min_crop}")
        if not self.augment_max_zoom_out >= 1.0:
            raise ValueError(f"augment_max_zoom_out must be >= 1, got {self.augment_max_zoom_out}")


@dataclass(frozen=True)
class TrainSection:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.05
    warmup_steps: int = 100
    grad_clip: float = 5.0  # max gradient norm; 0 disables clipping
    modality_dropout: float = 0.0  # probability of blanking one stream of a training pair
    dropout_stream: Literal["either", "rgb", "thermal"] = "either"  # either: one at random
    seed: int = 0
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"  # auto: bf16 on CPUs with it, fp16 on CUDA
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = 0
    threads: int = 0  # torch intra-op threads per process; 0 leaves torch's default
    save_every_steps: int = 0  # extra resume points inside an epoch; 0 = end of epoch only
    select_metric: str | None = None  # validation figure for the best checkpoint (task default)
    val_score_threshold: float = AP_SCORE_THRESHOLD  # detections kept for mAP (AP integrates)
    # start from this checkpoint's trained weights (fine-tuning; head classes by name)
    init_checkpoint: str | None = None
    # 0: off; else validate, select and save an exponential moving average of the weights
    # (timm's ModelEmaV3, decay warmed up from 0), which evens out epoch-to-epoch noise
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name in ("weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("warmup_steps", "num_workers", "threads", "save_every_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        if not 0.0 <= self.modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must lie in [0, 1), got {self.modality_dropout}")


@dataclass(frozen=True)
class TrainConfig:
    model: ModelSection
    data: DataSection
    train: TrainSection


def parse_train_config(raw: dict[str, Any]) -> TrainConfig:
    """A YAML-loaded mapping -> TrainConfig (errors name the dotted key)."""
    return from_mapping(TrainConfig, raw)


def parse_source(raw: dict[str, Any], path: str = "") -> SourceSection:
    """One split's mapping -> SourceSection, checked as in a training config (for
    splits kept outside one, such as a benchmark's extra test sets)."""
    return from_mapping(SourceSection, raw, path)


def load_train_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"train config {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    try:
        return parse_train_config(raw)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain dict (tuples as lists) for JSON logs, checkpoint metadata and round trips."""
    return to_plain(cfg)
