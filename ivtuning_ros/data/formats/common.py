"""What every format reader shares: pair records, checked image reading, counted skips.

Readers first build a list of `PairRecord`s (file paths + box annotations) and hand it to
`PairDataset`, which checks every pair when the data set is opened (files exist, image
headers readable, RGB / thermal / label / saliency sizes agree, boxes inside the image)
and reads pixels lazily with cv2. A bad pair raises `DatasetError` naming the file, or,
with ``skip_bad=True``, is dropped and counted in `.skipped` (name, reason) - never
silently misaligned. A file whose header is fine but whose pixels do not decode (e.g. a
truncated JPEG) can only be found when read: that raises `DatasetError` at access.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ivtuning_ros.types import RGBTSample

log = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
TASKS = ("detection", "segmentation", "saliency")

T = TypeVar("T")


class DatasetError(ValueError):
    """A data set file is missing, unreadable or inconsistent (the message names it)."""


@dataclass(frozen=True)
class PairRecord:
    """Where one RGB-T pair and its targets live. thermal=None: the thermal image is the
    4th channel of the `rgb` file (MFNet's RGB-T png)."""

    name: str
    rgb: Path
    thermal: Path | None
    boxes: np.ndarray | None = None  # (N, 4) float32 xyxy, original pixels
    labels: np.ndarray | None = None  # (N,) int64
    mask: Path | None = None
    saliency: Path | None = None
    size: tuple[int, int] | None = None  # (h, w) the annotation claims, if it says
    annotation: Path | None = None  # the file the boxes came from, for error messages


def index_images(folder: Path) -> dict[str, Path]:
    """Image files of a folder by stem (a stem seen twice, e.g. a.png and a.jpg, errors)."""
    out: dict[str, Path] = {}
    if not folder.is_dir():
        raise DatasetError(f"missing folder {folder}")
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in IMAGE_EXTS and p.is_file():
            if p.stem in out:
                raise DatasetError(f"two images with the name {p.stem!r} in {folder}")
            out[p.stem] = p
    return out


def split_hint(folder: Path) -> str:
    """' (it holds split folders a, b: pass split=)' when `folder` has sub-folders."""
    subs = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return f" (it holds split folders {', '.join(subs)}: pass split=)" if subs else ""


def find_dir(root: Path, candidates: Iterable[str]) -> Path | None:
    """First existing sub-folder among `candidates` (exact names, then case-insensitive)."""
    cands = list(candidates)
    for c in cands:
        if (root / c).is_dir():
            return root / c
    if root.is_dir():
        lower = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
        for c in cands:
            if c.lower() in lower:
                return lower[c.lower()]
    return None


def pair_file(name: str, images: dict[str, Path], what: str, folder: Path | None) -> Path:
    """The file of pair `name` in one folder's index; the error names the folder."""
    if name not in images:
        raise DatasetError(f"pair {name!r}: no {what} in {folder}")
    return images[name]


def collect_pairs(
    names: Iterable[str], build: Callable[[str], T], skip_bad: bool
) -> tuple[list[T], list[tuple[str, str]]]:
    """`build` each named pair; a pair whose build raises `DatasetError` stops the load,
    or with skip_bad is dropped and listed as (name, reason) for `PairDataset.skipped`."""
    built: list[T] = []
    skipped: list[tuple[str, str]] = []
    for name in names:
        try:
            built.append(build(name))
        except DatasetError as err:
            if not skip_bad:
                raise
            skipped.append((name, str(err)))
    return built, skipped


def image_hw(path: Path) -> tuple[int, int, int]:
    """(height, width, channels) from the file header only (fast: no pixel decoding)."""
    if not path.is_file():
        raise DatasetError(f"missing image file {path}")
    try:
        with Image.open(path) as im:
            w, h = im.size
            return h, w, len(im.getbands())
    except (UnidentifiedImageError, OSError) as err:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # e.g. TIFF variants PIL lacks
        if img is None:
            raise DatasetError(f"unreadable image file {path}: {err}") from None
        return img.shape[0], img.shape[1], 1 if img.ndim == 2 else img.shape[2]


def _grey(img: np.ndarray) -> bool:
    return bool((img[:, :, 0] == img[:, :, 1]).all() and (img[:, :, 1] == img[:, :, 2]).all())


def _near_grey(img: np.ndarray) -> bool:
    """Grey content stored as colour JPEG: channels differ only by compression noise."""
    b, g, r = (img[:, :, k].astype(np.int16) for k in range(3))
    return max(float(np.abs(b - g).mean()), float(np.abs(g - r).mean())) < 4.0


def _imread(path: Path, flags: int) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    if img is None:
        kind = "missing" if not path.is_file() else "unreadable"
        raise DatasetError(f"{kind} image file {path}")
    return img


def read_rgb(path: Path) -> np.ndarray:
    """uint8 RGB (H, W, 3); a grey image is expanded, 16-bit colour is scaled down."""
    img = _imread(path, cv2.IMREAD_UNCHANGED)
    if img.dtype == np.uint16:
        img = (img // 257).astype(np.uint8)
    if img.dtype != np.uint8:
        raise DatasetError(f"{path}: RGB image must be 8 or 16 bit, got {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_thermal(path: Path) -> np.ndarray:
    """float32 (H, W) in the file's own units: 8-bit stays 0..255, 16-bit stays counts,
    float TIFF stays as is. Thermal saved as 3 equal channels (LLVIP) becomes one."""
    img = _imread(path, cv2.IMREAD_UNCHANGED)
    if img.ndim == 3:
        img = img[:, :, :3]
        if _grey(img):
            img = img[:, :, 0]
        elif _near_grey(img):
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)  # JPEG chroma noise: luminance
        else:
            raise DatasetError(
                f"{path}: thermal image is in colour (a false-colour palette?); "
                "use the raw or grey thermal images"
            )
    if img.dtype not in (np.uint8, np.uint16, np.float32, np.float64, np.int16):
        raise DatasetError(f"{path}: unsupported thermal pixel type {img.dtype}")
    return img.astype(np.float32)


def read_rgbt(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 4-channel RGB-T image (MFNet): colour in the first three channels, thermal last."""
    img = _imread(path, cv2.IMREAD_UNCHANGED)
    if img.ndim != 3 or img.shape[2] != 4:
        raise DatasetError(f"{path}: expected a 4-channel RGB-T image, got shape {img.shape}")
    if img.dtype != np.uint8:
        raise DatasetError(f"{path}: expected 8-bit RGB-T channels, got {img.dtype}")
    rgb = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_BGR2RGB)
    return rgb, img[:, :, 3].astype(np.float32)


def read_label(path: Path) -> np.ndarray:
    """Class-id mask (H, W) uint8; colour-palette images (3 different channels) refused."""
    img = _imread(path, cv2.IMREAD_UNCHANGED)
    if img.ndim == 3:
        if not _grey(img):
            raise DatasetError(
                f"{path}: label image has colour channels; expected one channel of class ids"
            )
        img = img[:, :, 0]
    if img.dtype != np.uint8:
        if img.max() > 255:
            raise DatasetError(f"{path}: class ids above 255 in label image")
        img = img.astype(np.uint8)
    return img


def read_saliency(path: Path) -> np.ndarray:
    """Saliency ground truth as float32 [0, 1]."""
    img = _imread(path, cv2.IMREAD_UNCHANGED)
    if img.ndim == 3:
        img = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2GRAY)
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    return (img.astype(np.float32) / scale).clip(0.0, 1.0)


class PairDataset(Sequence[RGBTSample]):
    """A checked, lazily read list of RGB-T samples from one data set split.

    class_names: the label names of the data set's main task (detection classes if it
    has boxes, else segmentation classes, else ("salient",)); `class_names_for(task)`
    gives those of any task in `tasks`. `skipped` lists (pair name, reason) of pairs
    dropped with skip_bad=True. A box whose centre lies outside the image is an error
    naming its annotation file; one overhanging the border is clipped to it (counted in
    `clipped_boxes`), and one left with no area is dropped (counted in `dropped_boxes`).
    """

    def __init__(
        self,
        records: Sequence[PairRecord],
        *,
        fmt: str,
        root: Path,
        tasks: Sequence[str],
        class_names: dict[str, tuple[str, ...]],
        skip_bad: bool = False,
        skipped: Sequence[tuple[str, str]] = (),
        group_of: Callable[[str], str] | None = None,
    ) -> None:
        unknown = set(tasks) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown task(s) {sorted(unknown)}")
        if not records and not skipped:
            raise DatasetError(f"{fmt} data set {root}: no image pairs found")
        self.fmt = fmt
        self.root = Path(root)
        self.tasks = tuple(tasks)
        self._class_names = dict(class_names)
        self.skip_bad = skip_bad
        # a pair's group by its name (MSRS: "day" / "night"): splits keep groups apart,
        # evaluation reports each group's figures
        self.group_of = group_of
        self.skipped: list[tuple[str, str]] = list(skipped)
        self.dropped_boxes = 0
        self.clipped_boxes = 0
        kept = []
        for rec in tqdm(
            records,
            desc=f"checking {fmt} pairs",
            unit="pair",
            disable=len(records) < 2000,
            leave=False,
        ):
            try:
                kept.append(self._check(rec))
            except DatasetError as err:
                if not skip_bad:
                    raise
                self.skipped.append((rec.name, str(err)))
        if self.skipped:
            log.warning(
                "%s %s: skipped %d bad pair(s), e.g. %s",
                fmt,
                root,
                len(self.skipped),
                self.skipped[0][1],
            )
        self.records: list[PairRecord] = kept

    @classmethod
    def single_task(
        cls,
        task: str,
        class_names: tuple[str, ...],
        records: Sequence[PairRecord],
        skipped: Sequence[tuple[str, str]],
        *,
        fmt: str,
        root: Path,
        skip_bad: bool,
        group_of: Callable[[str], str] | None = None,
    ) -> PairDataset:
        """A data set with targets for one task only (what each folder layout carries)."""
        return cls(
            records,
            fmt=fmt,
            root=root,
            tasks=(task,),
            class_names={task: class_names},
            skip_bad=skip_bad,
            skipped=skipped,
            group_of=group_of,
        )

    @property
    def class_names(self) -> tuple[str, ...]:
        for task in TASKS:
            if task in self.tasks:
                return self._class_names[task]
        return ()

    def class_names_for(self, task: str) -> tuple[str, ...]:
        if task not in self.tasks:
            raise ValueError(
                f"{self.fmt} data set at {self.root} has no {task} targets "
                f"(it has: {', '.join(self.tasks) or 'none'})"
            )
        return self._class_names[task]

    def subset(self, indices: Iterable[int]) -> PairDataset:
        """The same data set (classes, tasks, groups) holding only the pairs at `indices`."""
        out = copy.copy(self)
        out.records = [self.records[i] for i in indices]
        return out

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self.load(self.records[index])

    def __repr__(self) -> str:
        return (
            f"PairDataset({self.fmt}, {self.root}, {len(self)} pairs, tasks={self.tasks}, "
            f"skipped={self.num_skipped})"
        )

    def _check(self, rec: PairRecord) -> PairRecord:
        """Header-level checks; returns the record with boxes clipped to the image."""
        h, w, ch = image_hw(rec.rgb)
        if rec.thermal is None:
            if ch != 4:
                raise DatasetError(f"{rec.rgb}: expected a 4-channel RGB-T image, has {ch}")
        else:
            th, tw, _ = image_hw(rec.thermal)
            if (th, tw) != (h, w):
                raise DatasetError(
                    f"pair {rec.name!r}: RGB {rec.rgb} is {w}x{h} but thermal {rec.thermal} "
                    f"is {tw}x{th} (register the pair first)"
                )
        for kind, path in (("label", rec.mask), ("saliency", rec.saliency)):
            if path is not None:
                mh, mw, _ = image_hw(path)
                if (mh, mw) != (h, w):
                    raise DatasetError(
                        f"pair {rec.name!r}: {kind} image {path} is {mw}x{mh}, RGB is {w}x{h}"
                    )
        if rec.size is not None and tuple(rec.size) != (h, w) and 0 not in rec.size:
            raise DatasetError(
                f"pair {rec.name!r}: annotation says {rec.size[1]}x{rec.size[0]} but "
                f"{rec.rgb} is {w}x{h}"
            )
        if rec.boxes is None or len(rec.boxes) == 0:
            return rec
        b = rec.boxes.astype(np.float32).copy()
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        out = (cx < 0) | (cx > w) | (cy < 0) | (cy > h)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise DatasetError(
                f"{rec.annotation or rec.name}: box {i} {[round(float(v), 1) for v in b[i]]} "
                f"lies outside the {w}x{h} image {rec.rgb.name}"
            )
        self.clipped_boxes += int(((b[:, :2] < 0).any(1) | (b[:, 2] > w) | (b[:, 3] > h)).sum())
        b[:, 0::2] = b[:, 0::2].clip(0, w)
        b[:, 1::2] = b[:, 1::2].clip(0, h)
        good = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        self.dropped_boxes += int((~good).sum())
        return dataclasses.replace(rec, boxes=b[good], labels=rec.labels[good])

    def load(self, rec: PairRecord) -> RGBTSample:
        """Read one pair's pixels (cv2); sizes are re-checked so nothing misaligns."""
        if rec.thermal is None:
            rgb, thermal = read_rgbt(rec.rgb)
        else:
            rgb, thermal = read_rgb(rec.rgb), read_thermal(rec.thermal)
            if rgb.shape[:2] != thermal.shape:
                raise DatasetError(
                    f"pair {rec.name!r}: RGB {rec.rgb} {rgb.shape[:2]} and thermal "
                    f"{rec.thermal} {thermal.shape} differ in size"
                )
        mask = read_label(rec.mask) if rec.mask is not None else None
        if mask is not None:
            n = len(self._class_names.get("segmentation", ()))
            bad = mask[(mask >= n) & (mask != 255)] if n else mask[:0]
            if bad.size:
                raise DatasetError(
                    f"{rec.mask}: class id {int(bad.max())} but the data set has {n} classes"
                )
        sal = read_saliency(rec.saliency) if rec.saliency is not None else None
        for kind, m, path in (("label", mask, rec.mask), ("saliency", sal, rec.saliency)):
            if m is not None and m.shape != rgb.shape[:2]:
                raise DatasetError(f"{kind} image {path} is {m.shape}, RGB is {rgb.shape[:2]}")
        boxes = rec.boxes if rec.boxes is not None else np.zeros((0, 4), np.float32)
        labels = rec.labels if rec.labels is not None else np.zeros((0,), np.int64)
        return RGBTSample(rgb, thermal, rec.name, boxes.copy(), labels.copy(), mask, sal)
