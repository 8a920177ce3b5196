"""Ground truth for the RGB frames of a bag: a COCO json sidecar keyed by message stamp.

Each COCO image carries `stamp_ns`, the header.stamp of its RGB message, which is how
node outputs (that copy the input header) find their ground truth. Category ids are
the writer's class list (`categories`); replay maps them to the model's by name.
Semantic masks, where the scene has them, are PNG files (one class id per pixel,
255 = ignore) named by `mask_file`.
The sidecar lives inside the bag folder (`ground_truth.json`), so a bag copied
anywhere keeps its labels; rosbag2 ignores files that metadata.yaml does not list.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ivtuning_ros.data.classes import match_classes

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
    track_ids: np.ndarray | None = None  # (N,) int64 object identities, where known


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
        track_ids: np.ndarray | None = None,
    ) -> None:
        """One RGB frame; track_ids (the identity of each box's object over the recording)
        are written as each annotation's `track_id`, as TAO and MOT-style COCO do."""
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
        labels = np.asarray(labels)
        tracks = [None] * len(labels) if track_ids is None else np.asarray(track_ids).tolist()
        for box, label, track in zip(np.asarray(boxes, np.float64), labels, tracks, strict=True):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            ann = {
                "id": len(self.annotations) + 1,
                "image_id": image_id,
                "category_id": int(label),
                "bbox": [float(box[0]), float(box[1]), w, h],
                "area": w * h,
                "iscrowd": 0,
            }
            if track is not None:
                ann["track_id"] = int(track)
            self.annotations.append(ann)

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
    """A loaded sidecar: frames by stamp plus the raw COCO dict for the metric library.

    Images without `stamp_ns` are accepted when they can be tied to the bag's RGB
    messages: by name (a file stem that is the stamp in ns, or ``<sec>_<nanosec>``), or
    by order (one image per RGB frame, in bag order: `bind_stamps`). Category ids are
    mapped to the model's classes by name (`for_model`), never used as they are.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ground-truth file not found: {self.path}")
        self.stamp_source = "stamp_ns"
        self.unscored_classes: tuple[str, ...] = ()
        try:
            self.coco: dict = json.loads(self.path.read_text())
            images = self.coco["images"]
            self.class_names = {int(c["id"]): c["name"] for c in self.coco["categories"]}
            # tracking is scored only where every box names its object (track_id)
            annotations = self.coco["annotations"]
            self.has_tracks = bool(annotations) and all("track_id" in a for a in annotations)
            boxes: dict[int, list] = {int(im["id"]): [] for im in images}
            for ann in self.coco["annotations"]:
                boxes[int(ann["image_id"])].append(
                    (ann["bbox"], int(ann["category_id"]), ann.get("track_id"))
                )
            self._frames: list[tuple[dict, FrameTruth]] = []
            for im in images:
                items = boxes[int(im["id"])]
                xywh = np.array([b for b, _, _ in items], np.float32).reshape(-1, 4)
                xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
                mask = im.get("mask_file")
                stamp = im.get("stamp_ns", _stamp_from_name(im.get("file_name", "")))
                frame = FrameTruth(
                    image_id=int(im["id"]),
                    stamp_ns=-1 if stamp is None else int(stamp),
                    width=int(im["width"]),
                    height=int(im["height"]),
                    boxes=xyxy,
                    labels=np.array([c for _, c, _ in items], np.int64),
                    mask_path=self.path.parent / mask if mask else None,
                    track_ids=_track_ids([t for _, _, t in items]),
                )
                self._frames.append((im, frame))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"{self.path} is not a ground-truth file (COCO json of images with width, "
                f"height and stamp_ns, annotations and categories): {err!r}"
            ) from None
        unstamped = [im for im, f in self._frames if f.stamp_ns < 0]
        if unstamped and len(unstamped) < len(self._frames):
            raise ValueError(
                f"{self.path}: {len(unstamped)} of {len(self._frames)} images have no stamp_ns "
                f"(e.g. {unstamped[0].get('file_name')!r}): give every image one or none"
            )
        if not unstamped and any("stamp_ns" not in im for im, _ in self._frames):
            self.stamp_source = "file names"
        self.needs_stamps = bool(unstamped)
        self.by_stamp = {f.stamp_ns: f for _, f in self._frames if f.stamp_ns >= 0}

    def bind_stamps(self, rgb_stamps: Sequence[int]) -> None:
        """Tie unstamped images to the bag's RGB frames by order (image id order); the
        counts must agree, else the error says how to add stamps."""
        if not self.needs_stamps:
            return
        stamps = sorted(dict.fromkeys(int(s) for s in rgb_stamps))
        frames = sorted((f for _, f in self._frames), key=lambda f: f.image_id)
        if len(frames) != len(stamps):
            raise ValueError(
                f"{self.path}: its images have no stamp_ns and there are {len(frames)} of them "
                f"for {len(stamps)} RGB frames in the bag, so they cannot be matched by order; "
                'add "stamp_ns" (the RGB message\'s header.stamp in ns) to every image, or '
                "name each image by its stamp (<ns>.png or <sec>_<nanosec>.png)"
            )
        self.by_stamp = {
            s: dataclasses.replace(f, stamp_ns=s) for s, f in zip(stamps, frames, strict=True)
        }
        self.needs_stamps = False
        self.stamp_source = "order (one image per RGB frame, in bag order)"

    def for_model(self, model_names: Sequence[str]) -> None:
        """Relabel every frame into the model's class ids, matched by name; classes the
        model lacks are left out (listed in `unscored_classes`); no common class at all
        is refused, listing both lists."""
        ids = sorted(self.class_names)
        cmap = match_classes(
            [self.class_names[i] for i in ids],
            model_names,
            exact=False,
            what=f"ground truth {self.path.name}",
        )
        to_model = {cid: int(cmap.to_model[k]) for k, cid in enumerate(ids)}
        self.unscored_classes = cmap.unmatched_data
        for stamp, f in list(self.by_stamp.items()):
            unknown = set(f.labels.tolist()) - set(to_model)
            if unknown:
                raise ValueError(
                    f"{self.path}: image {f.image_id} has category ids {sorted(unknown)} "
                    "that are not in its categories"
                )
            labels = np.array([to_model[c] for c in f.labels.tolist()], np.int64)
            keep = labels >= 0
            tracks = None if f.track_ids is None else f.track_ids[keep]
            self.by_stamp[stamp] = dataclasses.replace(
                f, boxes=f.boxes[keep], labels=labels[keep], track_ids=tracks
            )

    def get(self, stamp_ns: int) -> FrameTruth | None:
        return self.by_stamp.get(int(stamp_ns))

    def load_mask(self, frame: FrameTruth) -> np.ndarray:
        if frame.mask_path is None:
            raise ValueError(f"{self.path}: image {frame.image_id} has no mask")
        mask = cv2.imread(str(frame.mask_path), cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise FileNotFoundError(f"ground-truth mask missing or unreadable: {frame.mask_path}")
        return mask


def _track_ids(tracks: list) -> np.ndarray | None:
    """The frame's object identities when every box has one (else None: not tracked)."""
    if any(t is None for t in tracks):
        return None
    return np.array([int(t) for t in tracks], np.int64)


def _stamp_from_name(file_name: str) -> int | None:
    """The stamp a file name carries: ``<ns>`` (19 digits) or ``<sec>_<nanosec>``."""
    stem = Path(str(file_name)).stem
    if stem.isdigit() and len(stem) >= 18:
        return int(stem)
    sec, sep, nsec = stem.partition("_")
    if sep and sec.isdigit() and nsec.isdigit() and len(nsec) == 9:
        return int(sec) * 10**9 + int(nsec)
    return None
