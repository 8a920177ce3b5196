"""RGB-T salient object detection folders: VT5000, VT1000, VT821.

``[<split>/]RGB/<name>.jpg``, ``[<split>/]T/<name>.jpg`` and ``[<split>/]GT/<name>.png``
(VT5000 ships ``Train/`` and ``Test/``; VT1000 and VT821 have no split folders).
"""

from __future__ import annotations

from pathlib import Path

from ivtuning_ros.data.formats.common import (
    DatasetError,
    PairDataset,
    PairRecord,
    collect_pairs,
    find_dir,
    index_images,
    pair_file,
    split_hint,
)

RGB_DIRS, T_DIRS, GT_DIRS = ("RGB", "rgb"), ("T", "t", "Thermal"), ("GT", "gt")


def _dirs(folder: Path):
    return find_dir(folder, RGB_DIRS), find_dir(folder, T_DIRS), find_dir(folder, GT_DIRS)


def looks_like(root: Path) -> bool:
    return any(
        all(d is not None for d in _dirs(folder))
        for folder in (root, *(p for p in root.iterdir() if p.is_dir()))
    )


def load_saliency(root: Path, split: str | None = None, skip_bad: bool = False) -> PairDataset:
    root = Path(root)
    folder = root
    if split is not None:
        sub = find_dir(root, (split,))
        if sub is None:
            raise DatasetError(f"{root}: no split folder {split!r}")
        folder = sub
    rgb_dir, t_dir, gt_dir = _dirs(folder)
    if rgb_dir is None or t_dir is None or gt_dir is None:
        hint = split_hint(folder) if split is None else ""
        raise DatasetError(f"{folder}: expected RGB/, T/ and GT/ folders{hint}")
    rgb, th, gt = index_images(rgb_dir), index_images(t_dir), index_images(gt_dir)

    def record(name: str) -> PairRecord:
        thermal = pair_file(name, th, "thermal image", t_dir)
        return PairRecord(
            name, rgb[name], thermal, saliency=pair_file(name, gt, "ground truth", gt_dir)
        )

    records, skipped = collect_pairs(sorted(rgb), record, skip_bad)
    return PairDataset.single_task(
        "saliency", ("salient",), records, skipped, fmt="saliency", root=root, skip_bad=skip_bad
    )
