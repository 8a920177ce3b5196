"""Paired visible/infrared folders with Pascal VOC xml boxes: LLVIP and M3FD.

LLVIP: ``visible/{train,test}/*.jpg``, ``infrared/{train,test}/*.jpg`` (same names),
``Annotations/<name>.xml``. M3FD: ``Vis/``, ``Ir/``, ``Annotation(s)/`` with no official
split (give ``ImageSets/Main/<split>.txt`` to choose one). Boxes: VOC's 1-based inclusive
pixel corners become 0-based continuous xyxy (x_min - 1, y_min - 1, x_max, y_max), as
detectron2 does. Class names: fixed lists for LLVIP and M3FD; for plain "voc" the sorted
set of names in the xml files.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

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

RGB_DIRS = ("visible", "Vis", "vis", "vi", "Visible")
IR_DIRS = ("infrared", "Ir", "ir", "Infrared", "lwir")
ANN_DIRS = ("Annotations", "Annotation", "annotations")
PRESETS: dict[str, tuple[str, ...]] = {
    "llvip": ("person",),
    "m3fd": ("People", "Car", "Bus", "Motorcycle", "Lamp", "Truck"),
}


def looks_like(root: Path) -> bool:
    return all(find_dir(root, c) is not None for c in (RGB_DIRS, IR_DIRS, ANN_DIRS))


def parse_xml(path: Path) -> tuple[list[tuple[str, tuple[float, ...]]], tuple[int, int] | None]:
    """Objects (name, xyxy) and the (h, w) the file claims (None if absent)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        raise DatasetError(f"unreadable VOC xml {path}: {err}") from None
    objs = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        bb = obj.find("bndbox")
        if not name or bb is None:
            raise DatasetError(f"{path}: an <object> lacks <name> or <bndbox>")
        try:
            x0, y0, x1, y1 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            raise DatasetError(f"{path}: object {name!r} has a malformed <bndbox>") from None
        objs.append((name, (x0 - 1.0, y0 - 1.0, x1, y1)))
    size = root.find("size")
    hw = None
    if size is not None and size.findtext("height") and size.findtext("width"):
        hw = (int(float(size.findtext("height"))), int(float(size.findtext("width"))))
    return objs, hw


def load_voc(
    root: Path, split: str | None = None, skip_bad: bool = False, preset: str = "voc"
) -> PairDataset:
    root = Path(root)
    rgb_dir, ir_dir, ann_dir = (find_dir(root, c) for c in (RGB_DIRS, IR_DIRS, ANN_DIRS))
    if rgb_dir is None or ir_dir is None or ann_dir is None:
        raise DatasetError(
            f"{root}: expected visible/ (or Vis/), infrared/ (or Ir/) and Annotations/ folders"
        )
    names = None
    if split is not None:
        listing = root / "ImageSets" / "Main" / f"{split}.txt"
        if find_dir(rgb_dir, (split,)) is not None:
            rgb_dir, ir_dir = find_dir(rgb_dir, (split,)), find_dir(ir_dir, (split,))
            if ir_dir is None:
                raise DatasetError(f"{root}: visible has a {split}/ folder but infrared has not")
        elif listing.is_file():
            names = [n.strip() for n in listing.read_text().split() if n.strip()]
        else:
            raise DatasetError(
                f"{root}: no split {split!r} (no visible/{split}/ folder, no {listing})"
            )
    rgb_imgs, ir_imgs = index_images(rgb_dir), index_images(ir_dir)
    if names is None:
        names = sorted(rgb_imgs)
        if not names:
            raise DatasetError(f"no images in {rgb_dir}{split_hint(rgb_dir)}")
    fixed = PRESETS.get(preset)

    def parse(name: str) -> tuple[str, list[tuple[str, tuple[float, ...]]], tuple[int, int] | None]:
        pair_file(name, rgb_imgs, "visible image", rgb_dir)
        pair_file(name, ir_imgs, "infrared image", ir_dir)
        xml = ann_dir / f"{name}.xml"
        if not xml.is_file():
            raise DatasetError(f"pair {name!r}: missing annotation {xml}")
        objs, hw = parse_xml(xml)
        if fixed is not None:
            for cname, _ in objs:
                if cname not in fixed:
                    raise DatasetError(f"{xml}: class {cname!r} is not one of {fixed}")
        return name, objs, hw

    parsed, skipped = collect_pairs(names, parse, skip_bad)
    class_names = fixed or tuple(sorted({c for _, objs, _ in parsed for c, _ in objs}))
    if fixed is None and set(class_names) <= set(PRESETS["m3fd"]) and len(class_names) > 1:
        class_names = PRESETS["m3fd"]  # M3FD's own order, so ids match its papers
    index = {c: i for i, c in enumerate(class_names)}
    records = [
        PairRecord(
            name,
            rgb_imgs[name],
            ir_imgs[name],
            np.array([b for _, b in objs], np.float32).reshape(-1, 4),
            np.array([index[c] for c, _ in objs], np.int64),
            size=hw,
            annotation=ann_dir / f"{name}.xml",
        )
        for name, objs, hw in parsed
    ]
    return PairDataset.single_task(
        "detection", class_names, records, skipped, fmt=preset, root=root, skip_bad=skip_bad
    )
