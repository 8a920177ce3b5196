"""Metric wrappers against values worked out by hand."""

import numpy as np
import pytest

from ivtuning_ros.evaluation.metrics import (
    DetectionMetric,
    SaliencyMetric,
    SegmentationMetric,
    metric_for_task,
)
from ivtuning_ros.types import Detections

NAMES = ("person", "car", "bicycle", "dog")


def dets(boxes, scores, ids) -> Detections:
    return Detections(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float32),
        np.asarray(ids, np.int64),
    )


def test_detection_perfect_predictions_score_one():
    m = DetectionMetric(NAMES)
    gt = np.array([[10, 10, 50, 80], [100, 40, 200, 120]], np.float32)
    m.update(gt, np.array([0, 1]), dets(gt, [0.9, 0.8], [0, 1]), (240, 320))
    r = m.compute()
    assert r["map"] == pytest.approx(1.0)
    assert r["map50"] == pytest.approx(1.0)
    assert r["ap50/person"] == pytest.approx(1.0)
    assert np.isnan(r["ap50/dog"])  # never in ground truth


def test_detection_loose_box_counts_at_50_not_75():
    m = DetectionMetric(NAMES)
    gt = np.array([[0, 0, 100, 100]], np.float32)
    m.update(gt, np.array([2]), dets([[0, 0, 100, 150]], [0.9], [2]), (200, 200))  # IoU 0.667
    r = m.compute()
    assert r["map50"] == pytest.approx(1.0)
    assert r["map75"] == pytest.approx(0.0)


def test_detection_ap_with_a_false_positive_ranked_first():
    # Two people; the top-scoring detection is a miss, the second hits one person.
    # Precision/recall: (0, 0) then (0.5, 0.5) -> the interpolated precision is 0.5 at the
    # 51 recall points 0.00..0.50 of COCO's 101 and 0 above: AP50 = 51 * 0.5 / 101.
    m = DetectionMetric(NAMES)
    gt = np.array([[0, 0, 50, 50], [100, 100, 150, 150]], np.float32)
    m.update(
        gt,
        np.array([0, 0]),
        dets([[200, 0, 250, 50], [0, 0, 50, 50]], [0.9, 0.5], [0, 0]),
        (300, 300),
    )
    assert m.compute()["map50"] == pytest.approx(51 * 0.5 / 101, abs=1e-6)


def test_detection_wrong_class_and_no_detections_score_zero():
    m = DetectionMetric(NAMES)
    gt = np.array([[0, 0, 50, 50]], np.float32)
    m.update(gt, np.array([0]), dets(gt, [0.9], [1]), (100, 100))
    assert m.compute()["map50"] == 0.0
    empty = DetectionMetric(NAMES)
    empty.update(gt, np.array([3]), Detections.empty(), (100, 100))
    r = empty.compute()
    assert r["map50"] == 0.0 and r["ap50/dog"] == 0.0


def test_detection_operating_points_by_hand():
    # Two images, three people and one car. Detections by score: 0.9 hit, 0.8 miss,
    # 0.7 hit, 0.6 hit (car), 0.6 miss (a tie), 0.2 miss; one person is never found.
    # Cuts after 0.9: F1 2*1/(1+4) = 0.40; 0.8: 2/6; 0.7: 4/7 = 0.571; after the 0.6
    # tie (both kept): 6/9 = 0.667 <- best; 0.2: 6/10. All given: P 3/6, R 3/4.
    m = DetectionMetric(NAMES)
    people = np.array([[0, 0, 50, 50], [100, 100, 150, 150]], np.float32)
    m.update(
        people,
        np.array([0, 0]),
        dets([[0, 0, 50, 50], [200, 0, 250, 50], [100, 100, 150, 150]], [0.9, 0.8, 0.7], [0] * 3),
        (300, 300),
    )
    gt2 = np.array([[10, 10, 60, 90], [200, 200, 260, 260]], np.float32)
    m.update(
        gt2,
        np.array([1, 0]),
        dets([[10, 10, 60, 90], [0, 200, 40, 240], [100, 0, 150, 40]], [0.6, 0.6, 0.2], [1, 0, 0]),
        (300, 300),
    )
    r = m.compute()
    assert r["best_f1"] == pytest.approx(6 / 9)
    assert r["best_f1_threshold"] == pytest.approx(0.6)
    assert (r["precision"], r["recall"]) == (pytest.approx(0.5), pytest.approx(0.75))
    assert r["f1"] == pytest.approx(0.6)
    # nothing detected: F1 0 and a threshold that keeps nothing
    empty = DetectionMetric(NAMES)
    empty.update(people, np.array([0, 0]), Detections.empty(), (300, 300))
    assert (empty.compute()["best_f1"], empty.compute()["best_f1_threshold"]) == (0.0, 1.0)


def test_detection_rejects_bad_input():
    m = DetectionMetric(NAMES)
    with pytest.raises(ValueError, match="class id 7"):
        m.update(np.zeros((1, 4)), np.array([7]), Detections.empty(), (10, 10))
    with pytest.raises(ValueError, match="2 ground-truth boxes but 1 labels"):
        m.update(np.zeros((2, 4)), np.array([0]), Detections.empty(), (10, 10))
    with pytest.raises(ValueError, match="no ground-truth boxes"):
        DetectionMetric(NAMES).compute()


def test_segmentation_iou_from_confusion():
    m = SegmentationMetric(("road", "person", "car"))
    gt = np.array([[0, 0, 1, 1], [0, 0, 255, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [0, 0, 2, 2]], np.uint8)
    m.update(pred, gt)
    r = m.compute()
    # road: tp 3, gt 4, pred 3 -> 3/4; person: tp 2, gt 2, pred 3 -> 2/3; car: absent.
    assert r["iou/road"] == pytest.approx(3 / 4)
    assert r["iou/person"] == pytest.approx(2 / 3)
    assert np.isnan(r["iou/car"])  # ignored pixels never count, car is nowhere else
    assert r["miou"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert r["pixel_accuracy"] == pytest.approx(5 / 6)


def test_segmentation_rejects_mismatch_and_bad_ids():
    m = SegmentationMetric(("a", "b"))
    with pytest.raises(ValueError, match="differ"):
        m.update(np.zeros((2, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="class id 5"):
        m.update(np.full((2, 2), 5), np.zeros((2, 2)))


def test_saliency_perfect_and_empty_predictions():
    gt = np.zeros((64, 64), np.float32)
    gt[16:48, 20:40] = 1.0
    perfect = SaliencyMetric()
    perfect.update(gt, gt)
    r = perfect.compute()
    assert r["s_measure"] == pytest.approx(1.0, abs=1e-6)
    assert r["mae"] == pytest.approx(0.0)
    assert r["weighted_f"] == pytest.approx(1.0, abs=1e-3)
    assert r["e_measure_max"] == pytest.approx(1.0, abs=1e-3)
    blank = SaliencyMetric()
    blank.update(np.zeros_like(gt), gt)
    b = blank.compute()
    assert b["mae"] == pytest.approx(gt.mean())
    assert b["s_measure"] < 0.5 and b["weighted_f"] < 0.01


def test_metric_for_task_names_the_bad_task():
    assert isinstance(metric_for_task("saliency", NAMES), SaliencyMetric)
    with pytest.raises(ValueError, match="'depth'"):
        metric_for_task("depth", NAMES)
