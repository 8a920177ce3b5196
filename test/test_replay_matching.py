"""Accounting of a replay: every RGB frame lands in exactly one bucket; scores by stamp."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ivtuning_ros.replay.ground_truth import GroundTruth, GroundTruthWriter
from ivtuning_ros.replay.matching import OutputRecord, account
from ivtuning_ros.types import Detections

NAMES = ("person", "car")
BOX = np.array([[10, 10, 50, 60]], np.float32)


def _gt(tmp_path: Path, stamps: list[int]) -> GroundTruth:
    w = GroundTruthWriter(tmp_path, NAMES, {})
    for s in stamps:
        w.add(f"f{s}", s, 100, 80, BOX, np.array([0]))
    return GroundTruth(w.write())


def _out(stamp: int, modalities: int = 0, hit: bool = True, latency_ms: float = 40.0):
    box = BOX if hit else BOX + 45
    dets = Detections(box.copy(), np.array([0.9], np.float32), np.array([0], np.int64))
    return OutputRecord(
        stamp, 1000 * stamp + int(latency_ms * 1e6), modalities, stamp + 7, 5.0, dets
    )


def test_counts_add_up_and_accuracy_uses_only_frames_with_results(tmp_path: Path) -> None:
    stamps = list(range(1, 11))
    gt = _gt(tmp_path, stamps[:-1])  # frame 10 has no ground truth
    sent = [(s, 1000 * s) for s in stamps]
    outputs = [_out(s) for s in (1, 2, 3, 4, 5)]
    outputs += [_out(6, modalities=1, hit=False)]  # degraded, and wrong
    outputs += [_out(10)]  # result without ground truth
    outputs += [_out(2)]  # duplicate
    outputs += [_out(999)]  # a stamp nobody sent (re-stamped output)
    outputs += [OutputRecord(555, 0, 2)]  # thermal-only result on a thermal stamp
    acc = account(sent, [555], outputs, gt, "detection", NAMES)
    c = acc.counts
    assert c["rgb_frames"] == 10
    assert (c["matched"], c["degraded"], c["dropped"]) == (6, 1, 3)
    assert c["matched"] + c["degraded"] + c["dropped"] == c["rgb_frames"]
    assert (c["duplicate_outputs"], c["unmatched_outputs"], c["thermal_only_outputs"]) == (1, 1, 1)
    assert c["gt_missing"] == 1
    # 5 hits + 1 miss over 6 scored frames (frame 10 lacks ground truth, 7-9 dropped).
    assert acc.accuracy is not None and acc.accuracy["images"] == 6
    assert acc.accuracy["map50"] == pytest.approx(5 / 6, abs=0.02)
    # of the published boxes: 5 of 6 right, 5 of the 6 scored people found
    assert acc.accuracy["precision"] == pytest.approx(5 / 6)
    assert acc.accuracy["recall"] == pytest.approx(5 / 6)
    assert acc.latency["n"] == 7 and acc.latency["p50_ms"] == pytest.approx(40.0)
    assert acc.sync["pair_offset_abs_mean_ms"] == pytest.approx(7e-6)
    statuses = [f.status for f in acc.frames]
    assert statuses.count("dropped") == 3 and len(statuses) == 10


def test_no_ground_truth_or_no_results_is_reported_not_fatal(tmp_path: Path) -> None:
    sent = [(1, 1000), (2, 2000)]
    acc = account(sent, [], [_out(1)], None, "detection", NAMES)
    assert acc.accuracy is None and acc.accuracy_note == "no ground truth given"
    gt = _gt(tmp_path, [1, 2])
    acc = account(sent, [], [], gt, "detection", NAMES)
    assert acc.counts["dropped"] == 2 and acc.accuracy is None
    assert "no RGB frame with a result" in acc.accuracy_note


def test_ground_truth_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ground-truth file not found"):
        GroundTruth(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [{"id": 1}], "annotations": [], "categories": []}')
    with pytest.raises(ValueError, match="stamp_ns"):
        GroundTruth(bad)
