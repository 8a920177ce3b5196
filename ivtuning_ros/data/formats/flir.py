"""FLIR-aligned as published (Zhang et al., "cyclic fuse-and-refine", ICIP 2020).

``JPEGImages/FLIR_NNNNN_PreviewData.jpeg`` (thermal) beside ``FLIR_NNNNN_RGB.jpg``
(visible, registered to the thermal image), ``Annotations/FLIR_NNNNN_PreviewData.xml``
(Pascal VOC boxes drawn on the thermal image) and the split lists ``align_train.txt`` /
``align_validation.txt`` (one id a line, ``FLIR_NNNNN`` with or without the
``_PreviewData`` suffix). Read without conversion; ``split`` is ``train`` or
``validation`` (``val`` and ``test`` also name the validation list, the only held-out one).
Classes: person, car, bicycle, dog (the published annotations' names).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ivtuning_ros.data.formats.common import (
    DatasetError,
    PairDataset,
    PairRecord,
    collect_pairs,
    find_dir,
)
from ivtuning_ros.data.formats.voc import parse_xml

CLASS_NAMES = ("person", "car", "bicycle", "dog")
THERMAL_SUFFIX, RGB_SUFFIX = "_PreviewData.jpeg", "_RGB.jpg"
SPLIT_LISTS = {
    "train": "align_train.txt",
    "validation": "align_validation.txt",
    "val": "align_validation.txt",
    "test": "align_validation.txt",
}


def looks_like(root: Path) -> bool:
    images, ann = find_dir(root, ("JPEGImages",)), find_dir(root, ("Annotations",))
    return (
        images is not None
        and ann is not None
        and any(ann.glob("*.xml"))
        and any(images.glob(f"*{THERMAL_SUFFIX}"))
    )


def _pair_id(entry: str) -> str:
    stem = Path(entry).name
    for suffix in (THERMAL_SUFFIX, ".xml", ".jpeg", ".jpg", "_PreviewData", "_RGB"):
        stem = stem.removesuffix(suffix)
    return stem


def load_flir_aligned(root: Path, split: str | None = None, skip_bad: bool = False) -> PairDataset:
    root = Path(root)
    images, ann_dir = find_dir(root, ("JPEGImages",)), find_dir(root, ("Annotations",))
    if images is None or ann_dir is None:
        raise DatasetError(f"{root}: expected JPEGImages/ and Annotations/ (FLIR-aligned)")
    if split is None:
        ids = sorted(_pair_id(p.name) for p in images.glob(f"*{THERMAL_SUFFIX}"))
    else:
        if split not in SPLIT_LISTS:
            raise DatasetError(f"FLIR-aligned has no split {split!r}; choose train or validation")
        listing = root / SPLIT_LISTS[split]
        if not listing.is_file():
            raise DatasetError(f"{root}: missing split list {listing.name}")
        ids = [_pair_id(line) for line in listing.read_text().split() if line.strip()]
    index = {c: i for i, c in enumerate(CLASS_NAMES)}

    def build(pair: str) -> PairRecord:
        thermal, rgb = images / f"{pair}{THERMAL_SUFFIX}", images / f"{pair}{RGB_SUFFIX}"
        for kind, path in (("thermal", thermal), ("visible", rgb)):
            if not path.is_file():
                raise DatasetError(f"pair {pair!r}: missing {kind} image {path}")
        xml = ann_dir / f"{pair}_PreviewData.xml"
        if not xml.is_file():
            raise DatasetError(f"pair {pair!r}: missing annotation {xml}")
        objs, hw = parse_xml(xml)
        for name, _ in objs:
            if name not in index:
                raise DatasetError(f"{xml}: class {name!r} is not one of {CLASS_NAMES}")
        return PairRecord(
            pair,
            rgb,
            thermal,
            np.array([b for _, b in objs], np.float32).reshape(-1, 4),
            np.array([index[c] for c, _ in objs], np.int64),
            size=hw,
            annotation=xml,
        )

    records, skipped = collect_pairs(ids, build, skip_bad)
    return PairDataset.single_task(
        "detection", CLASS_NAMES, records, skipped, fmt="flir", root=root, skip_bad=skip_bad
    )
