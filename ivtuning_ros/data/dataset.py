"""Open a data set folder by format, and turn its samples into network inputs + targets.

`open_dataset` returns a `PairDataset` (a sequence of `RGBTSample`s with `.tasks`,
`.class_names`, `.class_names_for(task)`, `.skipped`). `PreparedDataset` wraps any
sequence of samples as a torch Dataset through `preprocess.prepare_pair`, so training
sees exactly the pixels the node sees; `collate` batches it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ivtuning_ros.data.formats.common import TASKS, DatasetError, PairDataset
from ivtuning_ros.preprocess import THERMAL_PRESETS, ThermalNorm, prepare_pair
from ivtuning_ros.tasks import get_task
from ivtuning_ros.types import CAMERAS, RGBTSample

DROPOUT_STREAMS = ("either", *CAMERAS)  # which camera modality dropout blanks


def _coco(root, split, skip_bad, name):
    from ivtuning_ros.data.formats.coco import load_coco

    return load_coco(root, split, skip_bad)


def _voc(root, split, skip_bad, name):
    from ivtuning_ros.data.formats.voc import load_voc

    return load_voc(root, split, skip_bad, preset=name)


def _yolo(root, split, skip_bad, name):
    from ivtuning_ros.data.formats.yolo import load_yolo

    return load_yolo(root, split, skip_bad, preset=name)


def _flir(root, split, skip_bad, name):
    from ivtuning_ros.data.formats import flir

    if flir.looks_like(Path(root)):  # FLIR-aligned as published: JPEGImages + VOC xml
        return flir.load_flir_aligned(root, split, skip_bad)
    return _coco(root, split, skip_bad, name)  # a COCO json of FLIR pairs


def _seg(root, split, skip_bad, name):
    from ivtuning_ros.data.formats.segmentation import load_segmentation

    return load_segmentation(root, split, skip_bad, preset=name)


def _sal(root, split, skip_bad, name):
    from ivtuning_ros.data.formats.saliency import load_saliency

    return load_saliency(root, split, skip_bad)


# Format names accepted by open_dataset (and `--format` options) -> reader.
FORMATS: dict[str, Callable[..., PairDataset]] = {
    "coco": _coco,
    "flir": _flir,
    "synthetic": _coco,
    "voc": _voc,
    "llvip": _voc,
    "m3fd": _voc,
    "yolo": _yolo,
    "msrs": _yolo,
    "segmentation": _seg,
    "mfnet": _seg,
    "pst900": _seg,
    "saliency": _sal,
    "vt5000": _sal,
    "vt1000": _sal,
    "vt821": _sal,
}


def detect_format(root: Path) -> str:
    """Guess a folder's format from its layout (see each reader's docstring)."""
    root = Path(root)
    if root.is_file() and root.suffix == ".json":
        return "coco"
    if not root.is_dir():
        raise FileNotFoundError(f"data set folder {root} does not exist")
    if (root / "annotations").is_dir() and any((root / "annotations").glob("*.json")):
        return "coco"
    if any(p.name != "dataset.json" for p in root.glob("*.json")):
        return "coco"
    from ivtuning_ros.data.formats import flir, saliency, segmentation, voc, yolo

    if flir.looks_like(root):
        return "flir"
    if voc.looks_like(root):
        return "voc"
    if yolo.looks_like(root):  # before segmentation: both have labels/, with txt here
        return "msrs" if yolo.looks_like_msrs(root) else "yolo"
    if segmentation.looks_like(root):
        return segmentation.guess_preset(root)
    if saliency.looks_like(root):
        return "saliency"
    subdirs = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) or "none"
    raise DatasetError(
        f"cannot tell the format of {root} (sub-folders: {subdirs}); pass fmt= one of "
        f"{', '.join(sorted(FORMATS))}"
    )


def open_dataset(
    root: str | Path, fmt: str = "auto", split: str | None = None, skip_bad: bool = False
) -> PairDataset:
    """Open one split of a data set. fmt "auto" guesses from the folder layout."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"data set path {root} does not exist")
    name = detect_format(root) if fmt == "auto" else fmt.lower()
    if name not in FORMATS:
        raise ValueError(
            f"unknown data set format {fmt!r}; choose from {', '.join(sorted(FORMATS))}"
        )
    return FORMATS[name](root, split, skip_bad, name)


# --------------------------------------------------------------------- augmentation


def augment_sample(
    s: RGBTSample,
    rng: np.random.Generator,
    flip_p: float = 0.5,
    min_crop: float = 0.8,
    max_zoom_out: float = 1.0,
) -> RGBTSample:
    """Horizontal flip and a random zoom, identical for both streams and targets: half
    the pairs zoom in on a crop of at least `min_crop` of each side; with `max_zoom_out`
    above 1 the other half zoom out, the image placed at random on a canvas up to that
    many times its size (filled with each stream's median), so objects appear smaller
    than the data set shows them (distant people at night).

    Boxes are clipped to the crop; a box keeping less than 30% of its area is dropped
    (its object is mostly outside the view).
    """
    h, w = s.thermal.shape
    rgb, thermal, mask, sal = s.rgb, s.thermal, s.mask, s.saliency
    boxes, labels = s.boxes.astype(np.float32), s.labels
    if rng.random() < 0.5:
        f = rng.uniform(min_crop, 1.0)
        ch, cw = max(2, round(h * f)), max(2, round(w * f))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        rgb, thermal = rgb[y0 : y0 + ch, x0 : x0 + cw], thermal[y0 : y0 + ch, x0 : x0 + cw]
        mask = mask[y0 : y0 + ch, x0 : x0 + cw] if mask is not None else None
        sal = sal[y0 : y0 + ch, x0 : x0 + cw] if sal is not None else None
        if len(boxes):
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            b = boxes - np.array([x0, y0, x0, y0], np.float32)
            b[:, 0::2] = b[:, 0::2].clip(0, cw)
            b[:, 1::2] = b[:, 1::2].clip(0, ch)
            kept = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
            keep = (kept >= 0.3 * area) & (b[:, 2] - b[:, 0] > 1) & (b[:, 3] - b[:, 1] > 1)
            boxes, labels = b[keep], labels[keep]
        w = cw
    elif max_zoom_out > 1.0:
        z = rng.uniform(1.0, max_zoom_out)
        ch, cw = round(h * z), round(w * z)
        y0, x0 = int(rng.integers(0, ch - h + 1)), int(rng.integers(0, cw - w + 1))

        def placed(img: np.ndarray | None, fill) -> np.ndarray | None:
            if img is None:
                return None
            canvas = np.empty((ch, cw, *img.shape[2:]), img.dtype)
            canvas[...] = fill
            canvas[y0 : y0 + h, x0 : x0 + w] = img
            return canvas

        rgb = placed(rgb, np.median(rgb.reshape(-1, rgb.shape[-1]), axis=0).astype(rgb.dtype))
        thermal = placed(thermal, np.median(thermal).astype(thermal.dtype))
        mask, sal = placed(mask, 255), placed(sal, 0)
        boxes = boxes + np.array([x0, y0, x0, y0], np.float32)
        w = cw
    if rng.random() < flip_p:
        rgb, thermal = rgb[:, ::-1], thermal[:, ::-1]
        mask = mask[:, ::-1] if mask is not None else None
        sal = sal[:, ::-1] if sal is not None else None
        boxes = np.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], axis=1)
    contig = np.ascontiguousarray
    return RGBTSample(
        contig(rgb),
        contig(thermal),
        s.name,
        boxes.astype(np.float32).reshape(-1, 4),
        labels,
        contig(mask) if mask is not None else None,
        contig(sal) if sal is not None else None,
    )


# ------------------------------------------------------------------- torch dataset


class PreparedDataset(Dataset):
    """Samples -> (rgb (3,h,w), thermal (1,h,w), target) tensors in [0, 1], letterboxed.

    target: "boxes" (N,4) float32 xyxy in network-input pixels and "labels" (N,) int64
    (detection), "mask" (h,w) int64 with 255 on padding and ignored pixels
    (segmentation), "saliency" (1,h,w) float32 (saliency); always "name", "letterbox"
    (maps predictions back to the original image) and "orig_hw".
    Augmentation (`augment`) flips and zooms in on a random crop of at least `min_crop` of
    each side (smaller: more zoom, larger small objects), or out by up to `max_zoom_out`.
    Modality dropout blanks a stream of a share `modality_dropout` of the pairs, with the
    same neutral fill as a missing camera at run time: `dropout_stream` "either" (chosen
    at random), or always "rgb" or "thermal", the camera expected to fail (a
    thermal-primary model keeps its backbone's input and learns to do without the
    prompted RGB stream).
    Randomness depends on (seed, epoch, index) only: call `set_epoch` each epoch.
    """

    def __init__(
        self,
        samples: Sequence[RGBTSample],
        input_hw: tuple[int, int],
        thermal_norm: ThermalNorm | str,
        task: str,
        augment: bool = False,
        modality_dropout: float = 0.0,
        seed: int = 0,
        dropout_stream: str = "either",
        min_crop: float = 0.8,
        max_zoom_out: float = 1.0,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
        tasks = getattr(samples, "tasks", None)
        if tasks is not None and task not in tasks:
            raise ValueError(f"data set has no {task} targets (it has: {', '.join(tasks)})")
        if not 0.0 <= modality_dropout <= 1.0:
            raise ValueError(f"modality_dropout must lie in [0, 1], got {modality_dropout}")
        if dropout_stream not in DROPOUT_STREAMS:
            raise ValueError(
                f"dropout_stream {dropout_stream!r} is not one of {', '.join(DROPOUT_STREAMS)}"
            )
        if isinstance(thermal_norm, str):
            if thermal_norm not in THERMAL_PRESETS:
                raise ValueError(
                    f"unknown thermal norm {thermal_norm!r}; presets: {', '.join(THERMAL_PRESETS)}"
                )
            thermal_norm = THERMAL_PRESETS[thermal_norm]
        self.samples = samples
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.thermal_norm = thermal_norm
        self.task = task
        if not 0.0 < min_crop <= 1.0:
            raise ValueError(f"min_crop must lie in (0, 1], got {min_crop}")
        self.augment = augment
        if not max_zoom_out >= 1.0:
            raise ValueError(f"max_zoom_out must be >= 1, got {max_zoom_out}")
        self.min_crop = min_crop
        self.max_zoom_out = max_zoom_out
        self.modality_dropout = modality_dropout
        self.dropout_stream = dropout_stream
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        s = self.samples[index]
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        if self.augment:
            s = augment_sample(s, rng, min_crop=self.min_crop, max_zoom_out=self.max_zoom_out)
        rgb, thermal = s.rgb, s.thermal
        if self.modality_dropout > 0 and rng.random() < self.modality_dropout:
            stream = self.dropout_stream
            if stream == "either":
                stream = "rgb" if rng.random() < 0.5 else "thermal"
            if stream == "rgb":
                rgb = None
            else:
                thermal = None
        rgb_t, th_t, box = prepare_pair(rgb, thermal, self.input_hw, self.thermal_norm)
        target: dict = {"name": s.name, "letterbox": box, "orig_hw": s.thermal.shape}
        target.update(get_task(self.task).target(s, box))
        return torch.from_numpy(rgb_t), torch.from_numpy(th_t), target


def collate(batch: Sequence[tuple]) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """Stack images; keep targets as a list (one dict per image), as the model expects."""
    rgb = torch.stack([b[0] for b in batch])
    thermal = torch.stack([b[1] for b in batch])
    return rgb, thermal, [b[2] for b in batch]
