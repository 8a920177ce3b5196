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
    find_dir,
    index_images,
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
    records, skipped = [], []
    for name in names if names is not None else sorted(rgb_imgs):
        try:
            if name not in rgb_imgs:
                raise DatasetError(f"pair {name!r}: no image in {rgb_dir or rgbt_dir}")
            if th_imgs is not None and name not in th_imgs:
                raise DatasetError(f"pair {name!r}: no thermal image in {th_dir}")
            if name not in labels:
                raise DatasetError(f"pair {name!r}: no label image in {label_dir}")
        except DatasetError as err:
            if not skip_bad:
                raise
            skipped.append((name, str(err)))
            continue
        thermal = th_imgs[name] if th_imgs is not None else None
        records.append(PairRecord(name, rgb_imgs[name], thermal, mask=labels[name]))
    return PairDataset(
        records,
        fmt=preset,
        root=root,
        tasks=("segmentation",),
        class_names={"segmentation": class_names},
        skip_bad=skip_bad,
        skipped=skipped,
    )
