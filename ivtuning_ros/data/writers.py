"""Write RGB-T samples in a real on-disk format (COCO json + png files) so that the same
loaders read synthetic and real data.

Layout of one split under `out`:
  rgb/<split>/<name>.png        8-bit RGB
  thermal/<split>/<name>.png    8-bit (AGC) or 16-bit (counts) single channel
  labels/<split>/<name>.png     class ids (segmentation), 255 = ignore
  saliency/<split>/<name>.png   0..255 grey (saliency)
  annotations/<split>.json      COCO: images carry rgb/thermal/mask/saliency file names
Everything is lossless, so a sample read back equals the sample written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ivtuning_ros.types import RGBTSample


def _thermal_png(thermal: np.ndarray, name: str) -> np.ndarray:
    t = np.asarray(thermal)
    if not np.isfinite(t).all() or t.min() < 0 or t.max() > 65535:
        raise ValueError(f"{name}: thermal values outside 0..65535 cannot be stored as png")
    if not np.array_equal(t, np.round(t)):
        raise ValueError(f"{name}: thermal values are not integral; png would change them")
    return t.astype(np.uint8) if t.max() <= 255 else t.astype(np.uint16)


def _write_png(path: Path, img: np.ndarray) -> None:
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")


def _write_images(s: RGBTSample, out: Path, split: str, folders: dict[str, str]) -> dict:
    """Write one sample's PNGs (RGB, thermal, and mask / saliency when their folders are
    asked for); returns its COCO image entry without the id."""
    h, w = s.rgb.shape[:2]
    rel = {k: f"{v}/{split}/{s.name}.png" for k, v in folders.items()}
    _write_png(out / rel["rgb"], cv2.cvtColor(s.rgb, cv2.COLOR_RGB2BGR))
    _write_png(out / rel["thermal"], _thermal_png(s.thermal, s.name))
    entry = {"width": w, "height": h, "file_name": rel["rgb"], "rgb_file_name": rel["rgb"],
             "thermal_file_name": rel["thermal"]}  # fmt: skip
    if "mask" in rel:
        if s.mask is None:
            raise ValueError(f"{s.name}: segmentation requested but the sample has no mask")
        _write_png(out / rel["mask"], s.mask.astype(np.uint8))
        entry["mask_file_name"] = rel["mask"]
    if "saliency" in rel:
        if s.saliency is None:
            raise ValueError(f"{s.name}: saliency requested but the sample has no map")
        _write_png(out / rel["saliency"], np.round(s.saliency * 255).astype(np.uint8))
        entry["saliency_file_name"] = rel["saliency"]
    return entry


def write_coco_split(
    samples: Iterable[RGBTSample],
    out: Path,
    split: str,
    class_names: Sequence[str],
    *,
    segmentation_classes: Sequence[str] | None = None,
    tasks: Sequence[str] = ("detection", "segmentation", "saliency"),
    info: dict | None = None,
    fields_of: Callable[[RGBTSample], dict] | None = None,
    total: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write one split; returns the json path. `fields_of(sample)` adds keys to a
    sample's image entry (e.g. its condition). Refuses to replace an existing split
    unless `overwrite` (a second call with another split name adds to the folder)."""
    out = Path(out)
    if not split or "/" in split or split.startswith("."):
        raise ValueError(f"bad split name {split!r}")
    ann_path = out / "annotations" / f"{split}.json"
    if ann_path.exists() and not overwrite:
        raise ValueError(f"{ann_path} exists; choose another split name or overwrite")
    if "segmentation" in tasks and not segmentation_classes:
        raise ValueError("segmentation output needs segmentation_classes")
    folders = {"rgb": "rgb", "thermal": "thermal"}
    if "segmentation" in tasks:
        folders["mask"] = "labels"
    if "saliency" in tasks:
        folders["saliency"] = "saliency"
    for sub in (*folders.values(), "annotations"):
        (out / sub / split if sub != "annotations" else out / sub).mkdir(
            parents=True, exist_ok=True
        )

    images, annotations = [], []
    names: set[str] = set()
    for img_id, s in enumerate(
        tqdm(samples, total=total, desc=f"writing {split}", unit="pair", disable=not progress),
        start=1,
    ):
        if not s.name or s.name in names or "/" in s.name:
            raise ValueError(f"sample names must be unique file names, got {s.name!r}")
        names.add(s.name)
        entry = {"id": img_id, **_write_images(s, out, split, folders)}
        if fields_of is not None:
            entry.update(fields_of(s))
        images.append(entry)
        for box, label in zip(s.boxes.tolist(), s.labels.tolist(), strict=True):
            x0, y0, x1, y1 = box
            annotations.append({
                "id": len(annotations) + 1, "image_id": img_id, "category_id": int(label) + 1,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0,
            })  # fmt: skip
    doc = {
        "info": dict(info or {}),
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(class_names)],
    }
    if "segmentation" in tasks:
        doc["segmentation_classes"] = list(segmentation_classes or ())
    tmp = ann_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, ann_path)  # atomic: a half-written json never looks complete
    return ann_path
