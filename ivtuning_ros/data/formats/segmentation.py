"""RGB-T semantic segmentation folders: MFNet and PST900 (and the same layout generally).

MFNet: ``images/<name>.png`` 4-channel RGB-T (thermal in the 4th channel) or separate
``rgb/`` + ``thermal/`` (also ``visible``/``infrared``, ``vi``/``ir``) folders,
``labels/<name>.png`` class ids, split lists ``train.txt`` / ``val.txt`` / ``test.txt``;
9 classes incl. unlabeled. PST900: ``<split>/rgb``, ``<split>/thermal``,
``<split>/labels``; 5 classes. Other data sets of this layout name their classes in a
``classes.txt`` (one per line). Label value 255 = ignore.
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

PRESETS: dict[str, tuple[str, ...]] = {
    "mfnet": ("unlabeled", "car", "person", "bike", "curve", "car_stop", "guardrail",
              "color_cone", "bump"),
    "pst900": ("background", "fire_extinguisher", "backpack", "hand_drill", "survivor"),
}  # fmt: skip
RGBT_DIRS = ("images",)
RGB_DIRS = ("rgb", "visible", "vi", "RGB")
TH_DIRS = ("thermal", "infrared", "ir", "Thermal")
LABEL_DIRS = ("labels", "label", "Label", "Labels")
MFNET_LISTS = ("train", "val", "test", "test_day", "test_night")  # its published split lists


def _layout(folder: Path) -> tuple[Path | None, Path | None, Path | None, Path | None]:
    rgbt = find_dir(folder, RGBT_DIRS)
    rgb, th = find_dir(folder, RGB_DIRS), find_dir(folder, TH_DIRS)
    return rgbt, rgb, th, find_dir(folder, LABEL_DIRS)


def looks_like(root: Path) -> bool:
    for folder in (root, *(p for p in root.iterdir() if p.is_dir())):
        rgbt, rgb, th, labels = _layout(folder)
        if labels is not None and (rgbt is not None or (rgb is not None and th is not None)):
            return True
    return False


def guess_preset(root: Path) -> str:
    """mfnet or pst900 from their published layouts; "segmentation" (classes from a
    classes.txt) otherwise."""
    if (root / "classes.txt").is_file():
        return "segmentation"
    if (root / "images").is_dir() and any((root / f"{s}.txt").is_file() for s in MFNET_LISTS):
        return "mfnet"
    splits = [p for p in root.iterdir() if p.is_dir() and p.name.lower() in ("train", "test")]
    if splits and all(None not in _layout(p)[1:] for p in splits):
        return "pst900"
    return "segmentation"


def load_segmentation(
    root: Path, split: str | None = None, skip_bad: bool = False, preset: str = "segmentation"
) -> PairDataset:
    root = Path(root)
    folder, names = root, None
    if split is not None:
        sub = find_dir(root, (split,))
        listing = root / f"{split}.txt"
        if sub is not None and _layout(sub)[3] is not None:
            folder = sub  # PST900-style split folders
        elif listing.is_file():
            names = [n.strip() for n in listing.read_text().split() if n.strip()]
        else:
            raise DatasetError(f"{root}: no split {split!r} (no {split}/ folder, no {listing})")
    rgbt_dir, rgb_dir, th_dir, label_dir = _layout(folder)
    if label_dir is None or (rgbt_dir is None and (rgb_dir is None or th_dir is None)):
        raise DatasetError(
            f"{folder}: expected labels/ and either images/ (4-channel RGB-T) or rgb/ + "
            f"thermal/{split_hint(folder) if split is None else ''}"
        )
    separate = rgb_dir is not None and th_dir is not None
    rgb_imgs = index_images(rgb_dir if separate else rgbt_dir)
    th_imgs = index_images(th_dir) if separate else None
    labels = index_images(label_dir)
    class_names = PRESETS.get(preset)
    if class_names is None:
        listing = root / "classes.txt"
        if not listing.is_file():
            raise DatasetError(
                f"{root}: unknown segmentation classes; use fmt='mfnet' or 'pst900' or write "
                "classes.txt (one class name per line)"
            )
        class_names = tuple(n.strip() for n in listing.read_text().splitlines() if n.strip())

    def record(name: str) -> PairRecord:
        rgb = pair_file(name, rgb_imgs, "image", rgb_dir if separate else rgbt_dir)
        thermal = None if th_imgs is None else pair_file(name, th_imgs, "thermal image", th_dir)
        return PairRecord(
            name, rgb, thermal, mask=pair_file(name, labels, "label image", label_dir)
        )

    records, skipped = collect_pairs(
        names if names is not None else sorted(rgb_imgs), record, skip_bad
    )
    return PairDataset.single_task(
        "segmentation", class_names, records, skipped, fmt=preset, root=root, skip_bad=skip_bad
    )
