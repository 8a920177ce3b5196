"""Paired visible/infrared folders with YOLO txt boxes: MSRS, and the layout generally.

MSRS (and others published this way): ``{split}/vi/NAME.png``, ``{split}/ir/NAME.png``
(grey; 3-channel PNGs with R=G=B are read as grey), ``{split}/labels/NAME.txt``. Other
folder names: ``visible``/``rgb`` and ``infrared``/``thermal``/``lwir``. A label file
holds one box a line, ``class cx cy w h`` normalised to [0, 1] by the image size (what
Ultralytics writes); an empty file is an image without objects, a missing one too (as
Ultralytics reads it; counted and logged). ``label_dir`` picks another label folder
(MSRS also publishes ``labels_visible`` and ``labels_fusion``).

Class names: ``classes.txt`` (one a line) or a ``data.yaml`` with ``names`` (a list or an
``{id: name}`` mapping) in the split folder or the data set root, or given; the ``msrs``
preset knows MSRS's (person, bicycle, car). ``split`` names a split folder, or several
joined by ``+`` (``train+test``: every published pair, for a split of one's own made by
`data.splits.block_split`); a ``{split}.txt`` list of names in the root is honoured too.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import yaml

from ivtuning_ros.data.formats.common import (
    DatasetError,
    PairDataset,
    PairRecord,
    collect_pairs,
    find_dir,
    image_hw,
    index_images,
    pair_file,
)

log = logging.getLogger(__name__)

RGB_DIRS = ("vi", "visible", "rgb", "Vis", "RGB", "Visible")
IR_DIRS = ("ir", "infrared", "thermal", "lwir", "Ir", "Infrared", "Thermal")
LABEL_DIR = "labels"
PRESETS: dict[str, tuple[str, ...]] = {"msrs": ("person", "bicycle", "car")}
MSRS_NAME = re.compile(r"\d{5}[DN]")  # frame number, D(ay) or N(ight)


def _has_layout(folder: Path) -> bool:
    labels = folder / LABEL_DIR
    return (
        find_dir(folder, RGB_DIRS) is not None
        and find_dir(folder, IR_DIRS) is not None
        and labels.is_dir()
        and any(labels.glob("*.txt"))
    )


def looks_like(root: Path) -> bool:
    """The root, or one of its split folders, has visible + infrared images and txt labels."""
    return _has_layout(root) or any(_has_layout(p) for p in root.iterdir() if p.is_dir())


def looks_like_msrs(root: Path) -> bool:
    """MSRS as published: vi/ + ir/ split folders, names like 00004N / 00055D (day or
    night), and no class list of its own."""
    folders = [root, *(p for p in root.iterdir() if p.is_dir())]
    folders = [f for f in folders if _has_layout(f)]
    if not folders or read_class_names(root, *folders) is not None:
        return False
    names = [p.stem for f in folders for p in (f / "vi").glob("*") if p.is_file()]
    return bool(names) and all(MSRS_NAME.fullmatch(n) for n in names)


def msrs_lighting(name: str) -> str:
    """ "day" or "night" from an MSRS name's last letter."""
    if not MSRS_NAME.fullmatch(name):
        raise DatasetError(f"{name!r} is not an MSRS pair name (5 digits and D or N)")
    return "day" if name.endswith("D") else "night"


def read_class_names(*folders: Path) -> tuple[str, ...] | None:
    """Class names from the first ``classes.txt`` or ``data.yaml`` found in `folders`."""
    for folder in folders:
        listing = folder / "classes.txt"
        if listing.is_file():
            names = tuple(n.strip() for n in listing.read_text().splitlines() if n.strip())
            if not names:
                raise DatasetError(f"{listing} lists no class names")
            return names
        for yml in (folder / "data.yaml", folder / "dataset.yaml"):
            if yml.is_file():
                return _yaml_names(yml)
    return None


def _yaml_names(path: Path) -> tuple[str, ...]:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise DatasetError(f"{path}: not valid YAML ({err})") from None
    names = raw.get("names") if isinstance(raw, dict) else None
    if isinstance(names, dict):
        ids = sorted(names)
        if ids != list(range(len(ids))):
            raise DatasetError(f"{path}: names must be numbered 0..{len(ids) - 1}, got {ids}")
        names = [names[i] for i in ids]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{path}: expected 'names' as a list or an {{id: name}} mapping")
    return tuple(names)


def parse_yolo_txt(
    path: Path, width: int, height: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N, 4) xyxy pixels, labels (N,)) of one label file; errors name file:line."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"unreadable label file {path}: {err}") from None
    boxes, labels = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{lineno}"
        if len(fields) != 5:
            raise DatasetError(f"{where}: expected 'class cx cy w h', got {line.strip()!r}")
        try:
            cls_f, cx, cy, w, h = (float(f) for f in fields)
        except ValueError:
            raise DatasetError(f"{where}: not numbers: {line.strip()!r}") from None
        if cls_f != int(cls_f) or not 0 <= cls_f < num_classes:
            raise DatasetError(
                f"{where}: class {fields[0]} is not one of the {num_classes} classes "
                f"(ids 0..{num_classes - 1})"
            )
        if w <= 0 or h <= 0 or not (0 <= cx <= 1 and 0 <= cy <= 1):
            raise DatasetError(
                f"{where}: box (cx {cx}, cy {cy}, w {w}, h {h}) lies outside the image "
                "(YOLO boxes are normalised to [0, 1])"
            )
        box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) * ([width, height] * 2)
        boxes.append(box)
        labels.append(int(cls_f))
    return (
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(labels, np.int64),
    )


def _split_folders(root: Path, split: str | None) -> list[Path]:
    if split is None:
        if _has_layout(root):
            return [root]
        subs = sorted(p.name for p in root.iterdir() if p.is_dir() and _has_layout(p))
        raise DatasetError(
            f"{root}: no vi/ + ir/ + labels/ here; it holds split folders "
            f"{', '.join(subs) or 'none'}: pass split= (join several with +)"
        )
    folders = []
    for part in split.split("+"):
        sub = find_dir(root, (part,))
        if sub is None or not _has_layout(sub):
            raise DatasetError(f"{root}: no split folder {part!r} with vi/, ir/ and labels/")
        folders.append(sub)
    return folders


def load_yolo(
    root: Path,
    split: str | None = None,
    skip_bad: bool = False,
    preset: str = "yolo",
    label_dir: str = LABEL_DIR,
    class_names: tuple[str, ...] | None = None,
) -> PairDataset:
    root = Path(root)
    names_file = root / f"{split}.txt" if split is not None else None
    if names_file is not None and names_file.is_file() and find_dir(root, (split,)) is None:
        listed = [n.strip() for n in names_file.read_text().split() if n.strip()]
        folders = [root]
    else:
        listed = None
        folders = _split_folders(root, split)
    classes = class_names or PRESETS.get(preset) or read_class_names(*folders, root)
    if classes is None:
        raise DatasetError(
            f"{root}: unknown class names; write a classes.txt (one name a line) or a "
            "data.yaml with names:, or use --format msrs for MSRS"
        )
    jobs: list[tuple[str, Path, Path, Path]] = []  # name, rgb, ir, label
    missing_labels = 0
    for folder in folders:
        rgb_dir, ir_dir = find_dir(folder, RGB_DIRS), find_dir(folder, IR_DIRS)
        lab_dir = folder / label_dir
        if not lab_dir.is_dir():
            raise DatasetError(f"{folder}: no label folder {label_dir}/")
        rgb_imgs, ir_imgs = index_images(rgb_dir), index_images(ir_dir)
        names = listed if listed is not None else sorted(rgb_imgs)
        for name in names:
            jobs.append((name, rgb_dir, ir_dir, lab_dir))
            if not (lab_dir / f"{name}.txt").is_file():
                missing_labels += 1
        # a thermal image without its visible partner is as bad as the reverse
        jobs.extend(
            (name, rgb_dir, ir_dir, lab_dir)
            for name in sorted(set(ir_imgs) - set(rgb_imgs))
            if listed is None
        )
    seen: set[str] = set()
    for name, *_ in jobs:
        if name in seen:
            raise DatasetError(f"{root}: pair {name!r} is in more than one of the splits {split}")
        seen.add(name)
    if missing_labels:
        log.warning(
            "%s: %d image(s) without a label file, read as images without objects",
            root,
            missing_labels,
        )
    indexes = {}

    def build(job: tuple[str, Path, Path, Path]) -> PairRecord:
        name, rgb_dir, ir_dir, lab_dir = job
        if rgb_dir not in indexes:
            indexes[rgb_dir], indexes[ir_dir] = index_images(rgb_dir), index_images(ir_dir)
        rgb = pair_file(name, indexes[rgb_dir], "visible image", rgb_dir)
        ir = pair_file(name, indexes[ir_dir], "infrared image", ir_dir)
        label = lab_dir / f"{name}.txt"
        if label.is_file():
            h, w, _ = image_hw(rgb)
            boxes, labels = parse_yolo_txt(label, w, h, len(classes))
        else:
            boxes, labels = np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)
        return PairRecord(name, rgb, ir, boxes, labels, annotation=label)

    by_name = {job[0]: job for job in jobs}
    records, skipped = collect_pairs(by_name, lambda n: build(by_name[n]), skip_bad)
    return PairDataset.single_task(
        "detection",
        tuple(classes),
        records,
        skipped,
        fmt=preset,
        root=root,
        skip_bad=skip_bad,
        group_of=msrs_lighting if preset == "msrs" else None,
    )
