"""The three splits of a training run, built from a `DataSection`.

A source is a dataset folder opened by format, synthetic night/fog scenes rendered once
into a cache folder keyed by their spec (so runs, ranks and benchmark modes share them),
or a seeded fraction held out of the training source.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import Subset

from ivtuning_ros.data.dataset import open_dataset
from ivtuning_ros.data.real import expand_path
from ivtuning_ros.data.splits import BlockSplit, block_part, group_part
from ivtuning_ros.data.thermal_mapping import ThermalMapped
from ivtuning_ros.geometry import ThermalGeometry
from ivtuning_ros.train.config import DataSection, SourceSection, SyntheticSpec
from ivtuning_ros.types import RGBTSample

SYNTHETIC_SPLIT = "data"


def default_cache_dir() -> Path:
    env = os.environ.get("IVTUNING_CACHE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "ivtuning_ros"
    return base / "synthetic"


def synthetic_folder(spec: SyntheticSpec, cache_dir: Path) -> Path:
    fields = {
        "conditions": spec.conditions,
        "count": spec.count,
        "seed": spec.seed,
        "size": spec.size,
    }
    # (sets rendered before zoom and thermal_optics existed keep their folders)
    if spec.zoom != 1.0:
        fields["zoom"] = spec.zoom
    if spec.thermal_optics != "fixed":
        fields["thermal_optics"] = spec.thermal_optics
    key = json.dumps(fields, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / f"{'+'.join(spec.conditions)}_{spec.count}_s{spec.seed}_{digest}"


def ensure_synthetic(spec: SyntheticSpec, cache_dir: Path, progress: bool = True) -> Path:
    """Render the spec's scenes unless the cache already holds them (written to a temp
    folder and renamed, so an interrupted render is never mistaken for a finished one)."""
    from ivtuning_ros.data.synthetic import write_synthetic

    folder = synthetic_folder(spec, cache_dir)
    if (folder / "annotations" / f"{SYNTHETIC_SPLIT}.json").is_file():
        return folder
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_synthetic(
        tmp,
        list(spec.conditions),
        {SYNTHETIC_SPLIT: spec.count},
        seed=spec.seed,
        size=(int(spec.size[0]), int(spec.size[1])),
        progress=progress,
        zoom=float(spec.zoom),
        thermal_optics=spec.thermal_optics,
    )
    try:
        os.replace(tmp, folder)
    except OSError:  # another process finished the same spec first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def open_source(
    src: SourceSection,
    cache_dir: Path,
    skip_bad: bool,
    progress: bool = True,
    block_split: BlockSplit | None = None,
) -> Sequence[RGBTSample]:
    """A source's samples; a block-split source is its part of the whole data set, cut by
    `block_split` (data/splits.py) with the data set's own groups (MSRS: day / night)."""
    if src.synthetic is not None:
        folder = ensure_synthetic(src.synthetic, cache_dir, progress)
        dataset = open_dataset(folder, "synthetic", split=SYNTHETIC_SPLIT, skip_bad=skip_bad)
    else:
        root = expand_path(src.root)
        dataset = open_dataset(root, src.format, split=src.split, skip_bad=skip_bad)
        if src.blocks is not None:
            dataset = block_part(dataset, block_split or BlockSplit(), src.blocks)
        if src.group is not None:
            dataset = group_part(dataset, src.group)
    if src.limit is not None:
        dataset = dataset.subset(range(min(src.limit, len(dataset))))
    if src.thermal_geometry is not None:
        geometry = ThermalGeometry.from_file(expand_path(src.thermal_geometry))
        dataset = ThermalMapped(dataset, geometry)
    return dataset


@dataclass
class Splits:
    train: Sequence[RGBTSample]
    val: Sequence[RGBTSample]
    test: Sequence[RGBTSample] | None
    class_names: dict[str, tuple[str, ...]]  # task -> class names of the training source
    train_extra: list[Sequence[RGBTSample]] = field(default_factory=list)  # pooled with train


def build_splits(data: DataSection, render: bool = True, progress: bool = True) -> Splits:
    """Open every source; carve val/test fractions out of train by a seeded permutation.

    With render=False synthetic sources must already be in the cache (other DDP ranks
    wait for rank 0 to render them)."""
    cache = Path(data.cache_dir).expanduser() if data.cache_dir else default_cache_dir()
    if not render:
        for src in (data.train, data.val, data.test, *data.train_extra):
            if src is not None and src.synthetic is not None:
                folder = synthetic_folder(src.synthetic, cache)
                if not (folder / "annotations").is_dir():
                    raise FileNotFoundError(f"synthetic data {folder} was not rendered")
    base = open_source(data.train, cache, data.skip_bad, progress, data.block_split)
    names = {t: base.class_names_for(t) for t in getattr(base, "tasks", ())}
    order = np.random.default_rng(data.split_seed).permutation(len(base))
    taken = 0
    held: dict[str, Sequence[RGBTSample] | None] = {}
    for name, src in (("val", data.val), ("test", data.test)):
        if src is None:
            held[name] = None
        elif src.fraction is not None:
            n = max(1, round(src.fraction * len(base)))
            held[name] = Subset(base, order[taken : taken + n].tolist())
            taken += n
        else:
            held[name] = open_source(src, cache, data.skip_bad, progress, data.block_split)
    train = Subset(base, sorted(order[taken:].tolist())) if taken else base
    if len(train) == 0:
        raise ValueError(f"no training pairs left after holding out {taken} for val/test")
    if len(held["val"]) == 0:
        raise ValueError("the validation split is empty")
    extra = [
        open_source(src, cache, data.skip_bad, progress, data.block_split)
        for src in data.train_extra
    ]
    return Splits(train, held["val"], held["test"], names, extra)
