"""Ground truth for the RGB frames of a bag: a COCO json sidecar keyed by message stamp.

Each COCO image carries `stamp_ns`, the header.stamp of its RGB message, which is how
node outputs (that copy the input header) find their ground truth. Category ids are
the model's class ids, as in Detection.class_id. Semantic masks, where the scene has
them, are PNG files (one class id per pixel, 255 = ignore) named by `mask_file`.
The sidecar lives inside the bag folder (`ground_truth.json`), so a bag copied
anywhere keeps its labels; rosbag2 ignores files that metadata.yaml does not list.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

GT_FILENAME = "ground_truth.json"
MASK_DIR = "gt_masks"


@dataclass(frozen=True)
class FrameTruth:
    """Labels of one RGB frame."""

    image_id: int
    stamp_ns: int
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) float32 xyxy, original RGB pixels
    labels: np.ndarray  # (N,) int64 class ids
    mask_path: Path | None


class GroundTruthWriter:
    """Collects frames and writes the COCO sidecar once, atomically."""

    def __init__(self, folder: Path, class_names: Sequence[str], info: dict) -> None:
        self.folder = Path(folder)
        self.categories = [{"id": i, "name": n} for i, n in enumerate(class_names)]
        self.info = info
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(
        self,
        name: str,
        stamp_ns: int,
        width: int,
        height: int,
        boxes: np.ndarray,
        labels: np.ndarray,
        mask: np.ndarray | None = None,
    ) -> None:
        image_id = len(self.images) + 1
        image = {
            "id": image_id,
            "file_name": name,
            "width": int(width),
            "height": int(height),
            "stamp_ns": int(stamp_ns),
            "stamp": {"sec": int(stamp_ns // 10**9), "nanosec": int(stamp_ns % 10**9)},
        }
        if mask is not None:
            rel = f"{MASK_DIR}/{image_id:06d}.png"
            (self.folder / MASK_DIR).mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(self.folder / rel), np.asarray(mask, np.uint8)):
                raise OSError(f"cannot write mask {self.folder / rel}")
            image["mask_file"] = rel
        self.images.append(image)
        for box, label in zip(np.asarray(boxes, np.float64), np.asarray(labels), strict=True):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            self.annotations.append(
                {
                    "id": len(self.annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": [float(box[0]), float(box[1]), w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )

    def write(self) -> Path:
        path = self.folder / GT_FILENAME
        doc = {
            "info": self.info,
            "images": self.images,
            "annotations": self.annotations,
            "categories": self.categories,
        }
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)
        return path


class GroundTruth:
    """A loaded sidecar: frames by stamp plus the raw COCO dict for the metric library."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ground-truth file not found: {self.path}")
        try:
            self.coco: dict = json.loads(self.path.read_text())
            images = self.coco["images"]
            self.class_names = {int(c["id"]): c["name"] for c in self.coco["categories"]}
            boxes: dict[int, list] = {int(im["id"]): [] for im in images}
            for ann in self.coco["annotations"]:
                boxes[int(ann["image_id"])].append((ann["bbox"], int(ann["category_id"])))
            self.by_stamp: dict[int, FrameTruth] = {}
            for im in images:
                items = boxes[int(im["id"])]
                xywh = np.array([b for b, _ in items], np.float32).reshape(-1, 4)
                xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
                mask = im.get("mask_file")
                self.by_stamp[int(im["stamp_ns"])] = FrameTruth(
                    image_id=int(im["id"]),
                    stamp_ns=int(im["stamp_ns"]),
                    width=int(im["width"]),
                    height=int(im["height"]),
                    boxes=xyxy,
                    labels=np.array([c for _, c in items], np.int64),
                    mask_path=self.path.parent / mask if mask else None,
                )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"{self.path} is not a ground-truth sidecar (COCO json with a stamp_ns per "
                f"image): {err!r}"
            ) from None

    def get(self, stamp_ns: int) -> FrameTruth | None:
        return self.by_stamp.get(int(stamp_ns))

    def load_mask(self, frame: FrameTruth) -> np.ndarray:
        if frame.mask_path is None:
            raise ValueError(f"{self.path}: image {frame.image_id} has no mask")
        mask = cv2.imread(str(frame.mask_path), cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise FileNotFoundError(f"ground-truth mask missing or unreadable: {frame.mask_path}")
        return mask
