"""COCO json with RGB + thermal file pairs (FLIR-aligned style; also what the synthetic
generator writes).

Each entry of ``images`` names its RGB file (``rgb_file_name``, else ``file_name``) and its
thermal file (``thermal_file_name``; FLIR-aligned names ``*_PreviewData.jpeg`` /
``*_RGB.jpg`` are paired by name when that key is absent). Optional per-image
``mask_file_name`` (png of class ids) and ``saliency_file_name`` (grey png) add the
segmentation and saliency tasks; the top-level ``segmentation_classes`` lists the mask
class names. Paths are relative to the data set root (else to the json's folder).
A pair's name is the stem of ``file_name``. Category ids are mapped to contiguous labels
0..K-1 in ascending id order. Crowd annotations (``iscrowd`` = 1) are left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ivtuning_ros.data.formats.common import DatasetError, PairDataset, PairRecord

THERMAL_KEYS = ("thermal_file_name", "file_name_thermal", "ir_file_name", "infrared_file_name")
FLIR_THERMAL_SUFFIX, FLIR_RGB_SUFFIX = "_PreviewData.jpeg", "_RGB.jpg"


def find_json(root: Path, split: str | None) -> Path:
    """The annotation file of one split: root/annotations/<split>.json, root/<split>.json,
    or the only json there is when no split is given."""
    root = Path(root)
    if root.is_file():
        return root
    if split is not None:
        for cand in (root / "annotations" / f"{split}.json", root / f"{split}.json"):
            if cand.is_file():
                return cand
        raise DatasetError(
            f"no annotations for split {split!r} in {root} "
            f"(looked for annotations/{split}.json and {split}.json)"
        )
    found = sorted(root.glob("*.json")) + sorted((root / "annotations").glob("*.json"))
    found = [p for p in found if p.name != "dataset.json"]
    if len(found) != 1:
        names = ", ".join(str(p.relative_to(root)) for p in found) or "none"
        raise DatasetError(f"{root}: choose a split; COCO json files found: {names}")
    return found[0]


def _resolve(root: Path, json_dir: Path, rel: str, what: str, src: Path) -> Path:
    for base in (root, json_dir):
        p = base / rel
        if p.is_file():
            return p
    raise DatasetError(f"{src}: {what} {rel!r} does not exist (under {root} or {json_dir})")


def load_coco(root: Path, split: str | None = None, skip_bad: bool = False) -> PairDataset:
    root = Path(root)
    path = find_json(root, split)
    data_root = root if root.is_dir() else path.parent
    try:
        data = json.loads(path.read_text())
        images, cats = data["images"], data["categories"]
        anns = data.get("annotations", [])
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(f"cannot read COCO json {path}: {err}") from None
    except (KeyError, TypeError) as err:
        raise DatasetError(f"{path}: not a COCO json (missing {err})") from None
    cat_ids = sorted(int(c["id"]) for c in cats)
    by_id = {int(c["id"]): c["name"] for c in cats}
    label_of = {cid: i for i, cid in enumerate(cat_ids)}
    class_names = {"detection": tuple(by_id[c] for c in cat_ids)}
    per_image: dict[int, list[dict]] = {}
    for a in anns:
        per_image.setdefault(int(a["image_id"]), []).append(a)
    known = {int(im["id"]) for im in images}
    stray = set(per_image) - known
    if stray:
        raise DatasetError(f"{path}: annotations refer to unknown image id(s) {sorted(stray)[:5]}")

    records, skipped = [], []
    has_mask = has_sal = True
    for im in images:
        name = Path(im.get("file_name", im.get("rgb_file_name", str(im.get("id"))))).stem
        try:
            rec = _record(name, im, per_image.get(int(im["id"]), []), label_of, data_root, path)
        except DatasetError as err:
            if not skip_bad:
                raise
            skipped.append((name, str(err)))
            continue
        has_mask &= rec.mask is not None
        has_sal &= rec.saliency is not None
        records.append(rec)
    tasks = ["detection"]
    if records and has_mask:
        seg = data.get("segmentation_classes")
        if not seg:
            raise DatasetError(f"{path}: images carry masks but 'segmentation_classes' is missing")
        tasks.append("segmentation")
        class_names["segmentation"] = tuple(seg)
    if records and has_sal:
        tasks.append("saliency")
        class_names["saliency"] = ("salient",)
    return PairDataset(
        records,
        fmt="coco",
        root=data_root,
        tasks=tasks,
        class_names=class_names,
        skip_bad=skip_bad,
        skipped=skipped,
    )


def _record(
    name: str, im: dict, anns: list[dict], label_of: dict, root: Path, src: Path
) -> PairRecord:
    rgb_rel = im.get("rgb_file_name", im.get("file_name"))
    if rgb_rel is None:
        raise DatasetError(f"{src}: image id {im.get('id')} has no file_name")
    th_rel = next((im[k] for k in THERMAL_KEYS if k in im), None)
    if th_rel is None:
        if rgb_rel.endswith(FLIR_THERMAL_SUFFIX):  # FLIR-aligned annotates the thermal file
            th_rel, rgb_rel = rgb_rel, rgb_rel[: -len(FLIR_THERMAL_SUFFIX)] + FLIR_RGB_SUFFIX
        else:
            raise DatasetError(
                f"{src}: image {rgb_rel!r} names no thermal file (key thermal_file_name)"
            )
    rgb = _resolve(root, src.parent, rgb_rel, "RGB image", src)
    thermal = _resolve(root, src.parent, th_rel, "thermal image", src)
    mask = sal = None
    if "mask_file_name" in im:
        mask = _resolve(root, src.parent, im["mask_file_name"], "label image", src)
    if "saliency_file_name" in im:
        sal = _resolve(root, src.parent, im["saliency_file_name"], "saliency image", src)
    boxes, labels = [], []
    for a in anns:
        if a.get("iscrowd", 0):
            continue
        cid = int(a["category_id"])
        if cid not in label_of:
            raise DatasetError(f"{src}: annotation {a.get('id')} has unknown category {cid}")
        x, y, w, h = (float(v) for v in a["bbox"])
        boxes.append((x, y, x + w, y + h))
        labels.append(label_of[cid])
    size = (int(im.get("height", 0)), int(im.get("width", 0)))
    return PairRecord(
        name=name,
        rgb=rgb,
        thermal=thermal,
        boxes=np.array(boxes, np.float32).reshape(-1, 4),
        labels=np.array(labels, np.int64),
        mask=mask,
        saliency=sal,
        size=size,
        annotation=src,
    )
