"""Task metrics, accumulated one image at a time: COCO mAP (pycocotools), per-class IoU
and mIoU (a confusion matrix), and the salient-object-detection measures (pysodmetrics).

Each metric takes predictions and ground truth in the SAME pixel frame (original image
pixels in `ivtuning eval`, network-input pixels in validation during training) and
returns a flat dict of plain floats, so results go straight into JSON.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

from ivtuning_ros.types import Detections


class DetectionMetric:
    """COCO-style box AP over a whole split (pycocotools' COCOeval, 101-point AP)."""

    def __init__(self, class_names: Sequence[str]) -> None:
        if not class_names:
            raise ValueError("DetectionMetric needs at least one class name")
        self.class_names = tuple(class_names)
        self._images: list[dict] = []
        self._gts: list[dict] = []
        self._dets: list[dict] = []

    def update(
        self,
        gt_boxes: np.ndarray,
        gt_labels: np.ndarray,
        detections: Detections,
        image_hw: tuple[int, int],
    ) -> None:
        """Add one image: ground truth boxes (N,4) xyxy + labels (N,), and its detections."""
        gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
        gt_labels = np.asarray(gt_labels, np.int64).reshape(-1)
        if len(gt_boxes) != len(gt_labels):
            raise ValueError(f"{len(gt_boxes)} ground-truth boxes but {len(gt_labels)} labels")
        n_cls = len(self.class_names)
        for name, ids in (("ground truth", gt_labels), ("detection", detections.class_ids)):
            if len(ids) and (ids.min() < 0 or ids.max() >= n_cls):
                raise ValueError(
                    f"{name} class id {int(ids.max())} outside 0..{n_cls - 1} "
                    f"({', '.join(self.class_names)})"
                )
        image_id = len(self._images) + 1
        h, w = int(image_hw[0]), int(image_hw[1])
        self._images.append({"id": image_id, "height": h, "width": w})
        for box, label in zip(gt_boxes, gt_labels, strict=True):
            bw, bh = box[2] - box[0], box[3] - box[1]
            self._gts.append(
                {
                    "id": len(self._gts) + 1,
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [float(box[0]), float(box[1]), float(bw), float(bh)],
                    "area": float(max(bw, 0.0) * max(bh, 0.0)),
                    "iscrowd": 0,
                }
            )
        for box, score, label in zip(
            detections.boxes, detections.scores, detections.class_ids, strict=True
        ):
            self._dets.append(
                {
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [
                        float(box[0]),
                        float(box[1]),
                        float(box[2] - box[0]),
                        float(box[3] - box[1]),
                    ],
                    "score": float(score),
                }
            )

    def compute(self) -> dict[str, float]:
        """mAP (IoU .50:.95), mAP50, mAP75, per-class AP50 (NaN for a class never seen) and
        the operating points at IoU .5 (see `operating_points`)."""
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        names = self.class_names
        result = {"map": 0.0, "map50": 0.0, "map75": 0.0, "images": float(len(self._images))}
        result.update(NOTHING_DETECTED)
        result.update({f"ap50/{n}": float("nan") for n in names})
        if not self._gts:
            raise ValueError("no ground-truth boxes in the evaluated split: mAP is undefined")
        gt = COCO()
        gt.dataset = {
            "images": self._images,
            "annotations": self._gts,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)],
        }
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            gt.createIndex()
            if not self._dets:  # nothing detected: every AP is 0 for classes with ground truth
                present = {a["category_id"] - 1 for a in self._gts}
                result.update({f"ap50/{names[c]}": 0.0 for c in present})
                return result
            dt = gt.loadRes(self._dets)
            ev = COCOeval(gt, dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        result["map"], result["map50"], result["map75"] = (max(float(s), 0.0) for s in ev.stats[:3])
        result.update(operating_points(ev))
        # precision: [iou thresholds, recall points, classes, area ranges, max dets]
        precision = ev.eval["precision"][0, :, :, 0, -1]
        for k, name in enumerate(names):
            p = precision[:, k]
            result[f"ap50/{name}"] = float(p[p > -1].mean()) if (p > -1).any() else float("nan")
        return result


# the operating points when no detection is given (a threshold of 1 keeps nothing)
NOTHING_DETECTED = {
    "precision": 0.0,
    "recall": 0.0,
    "f1": 0.0,
    "best_f1": 0.0,
    "best_f1_threshold": 1.0,
}


def operating_points(ev) -> dict[str, float]:
    """What a user of the published boxes gets, at IoU .5 over all classes: precision,
    recall and F1 of every detection given, and the score threshold with the best F1
    (on a validation split, the node's natural default: mAP alone does not say where to
    cut). Matches are COCOeval's own (area "all", its max detections per image)."""
    scores, hits, n_gt = [], [], 0
    for img in ev.evalImgs:
        if img is None or img["aRng"] != ev.params.areaRng[0]:
            continue
        keep = ~np.asarray(img["dtIgnore"][0], bool).reshape(-1)
        scores.append(np.asarray(img["dtScores"], np.float64)[keep])
        hits.append(np.asarray(img["dtMatches"][0])[keep] > 0)
        n_gt += int((~np.asarray(img["gtIgnore"], bool)).sum())
    scores, hits = np.concatenate([[], *scores]), np.concatenate([[], *hits]).astype(bool)
    if not len(scores) or not n_gt:
        return dict(NOTHING_DETECTED)
    order = np.argsort(-scores, kind="stable")
    scores, tp = scores[order], np.cumsum(hits[order])
    f1 = 2.0 * tp / (np.arange(1, len(tp) + 1) + n_gt)
    # a threshold keeps every detection of equal score: only cut after the last of a tie
    cuts = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))
    best = cuts[np.argmax(f1[cuts])]
    return {
        "precision": float(tp[-1] / len(tp)),
        "recall": float(tp[-1] / n_gt),
        "f1": float(f1[-1]),
        "best_f1": float(f1[best]),
        "best_f1_threshold": float(scores[best]),
    }


class SegmentationMetric:
    """Per-class IoU and mIoU from a confusion matrix (pixels labelled `ignore_index` skipped)."""

    def __init__(self, class_names: Sequence[str], ignore_index: int = 255) -> None:
        if not class_names:
            raise ValueError("SegmentationMetric needs at least one class name")
        self.class_names = tuple(class_names)
        self.ignore_index = ignore_index
        n = len(self.class_names)
        self.confusion = np.zeros((n, n), np.int64)  # rows: ground truth, columns: prediction

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image: predicted and ground-truth class-id maps of the same (H, W)."""
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"predicted mask {pred.shape} and ground truth {gt.shape} differ")
        n = len(self.class_names)
        valid = gt != self.ignore_index
        g, p = gt[valid].astype(np.int64), pred[valid].astype(np.int64)
        for name, ids in (("ground-truth", g), ("predicted", p)):
            if ids.size and (ids.min() < 0 or ids.max() >= n):
                raise ValueError(
                    f"{name} mask holds class id {int(ids.max())} outside 0..{n - 1} "
                    f"(and not the ignore index {self.ignore_index})"
                )
        self.confusion += np.bincount(g * n + p, minlength=n * n).reshape(n, n)

    def compute(self) -> dict[str, float]:
        """IoU per class (NaN where a class is in neither prediction nor ground truth), mIoU
        over the classes that occur, and pixel accuracy."""
        cm = self.confusion
        tp = np.diag(cm).astype(np.float64)
        union = cm.sum(0) + cm.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
        total = cm.sum()
        if total == 0:
            raise ValueError("no labelled pixels in the evaluated split: mIoU is undefined")
        result = {
            "miou": float(np.nanmean(iou)),
            "pixel_accuracy": float(tp.sum() / total),
        }
        result.update({f"iou/{n}": float(v) for n, v in zip(self.class_names, iou, strict=True)})
        return result


class SaliencyMetric:
    """S-measure, E-measure, weighted F-measure and MAE, computed by pysodmetrics exactly
    as the SOD literature's toolkits do (prediction as an 8-bit map, ground truth > 127)."""

    def __init__(self) -> None:
        import py_sod_metrics as sod

        self._sm, self._em = sod.Smeasure(), sod.Emeasure()
        self._wfm, self._mae = sod.WeightedFmeasure(), sod.MAE()
        self.count = 0

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image: predicted saliency (H, W) in [0, 1], ground truth (H, W) in [0, 1]."""
        pred, gt = np.asarray(pred, np.float32), np.asarray(gt, np.float32)
        if pred.shape != gt.shape or pred.ndim != 2:
            raise ValueError(f"saliency map {pred.shape} and ground truth {gt.shape} must be HxW")
        if not np.isfinite(pred).all():
            raise ValueError("predicted saliency map has non-finite values")
        p8 = np.clip(np.rint(pred * 255.0), 0, 255).astype(np.uint8)
        g8 = np.clip(np.rint(gt * 255.0), 0, 255).astype(np.uint8)
        for metric in (self._sm, self._em, self._wfm, self._mae):
            metric.step(pred=p8, gt=g8)
        self.count += 1

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("no saliency maps were evaluated")
        em = self._em.get_results()["em"]
        return {
            "s_measure": float(self._sm.get_results()["sm"]),
            "e_measure_mean": float(np.mean(em["curve"])),
            "e_measure_max": float(np.max(em["curve"])),
            "e_measure_adaptive": float(em["adp"]),
            "weighted_f": float(self._wfm.get_results()["wfm"]),
            "mae": float(self._mae.get_results()["mae"]),
        }


# The figure each task's best checkpoint is selected on, and whether higher is better.
def metric_for_task(task: str, class_names: Sequence[str]):
    """The accumulator of a task by name (the task registry's)."""
    from ivtuning_ros.tasks import get_task

    return get_task(task).metric(class_names)
