"""Tracking: identities that persist (ByteTrack from `trackers`), their messages, their
ground truth and their scores (motmetrics)."""

from __future__ import annotations

import numpy as np
import pytest

from ivtuning_ros.evaluation.tracking import TrackingMetric, box_iou
from ivtuning_ros.tracking import UNTRACKED, DetectionTracker, TrackingConfig
from ivtuning_ros.types import Detections


def _frame(t: float, n: int = 3, step: float = 4.0) -> tuple[Detections, np.ndarray]:
    """n objects, each 30x60 px, drifting right at `step` px per 0.1 s; their ids 10.."""
    x = 20 + np.arange(n) * 100 + step * t * 10
    boxes = np.stack([x, np.full(n, 50.0), x + 30, np.full(n, 110.0)], axis=1).astype(np.float32)
    dets = Detections(boxes, np.full(n, 0.9, np.float32), np.zeros(n, np.int64))
    return dets, 10 + np.arange(n)


def test_identities_persist_and_survive_a_gap_shorter_than_the_buffer():
    tracker = DetectionTracker(TrackingConfig(buffer_s=1.0))
    ids = []
    for i in range(12):
        t = i * 0.1
        dets, _ = _frame(t)
        if 5 <= i < 9:  # 0.4 s without detections (e.g. a frame the node dropped)
            dets = Detections.empty()
        out = tracker.update(dets, t)
        assert out.track_ids is not None and len(out.track_ids) == len(dets)
        np.testing.assert_array_equal(out.boxes, dets.boxes)  # same order as given
        ids.append(out.track_ids.tolist())
    assert ids[0] == [UNTRACKED] * 3  # confirmed at the second match
    assert ids[1] == ids[4] == ids[9] == ids[11]
    assert len(set(ids[1])) == 3 and min(ids[1]) >= 0


def test_a_gap_longer_than_the_buffer_gives_new_identities():
    tracker = DetectionTracker(TrackingConfig(buffer_s=0.3))
    first = [tracker.update(_frame(t)[0], t).track_ids for t in (0.0, 0.1, 0.2)][-1]
    later = [tracker.update(_frame(t)[0], t).track_ids for t in (2.0, 2.1, 2.2)][-1]
    assert min(later) >= 0 and not set(first) & set(later)


def test_stamps_going_back():
    tracker = DetectionTracker(TrackingConfig())
    for t in (0.0, 0.1, 0.2):
        ids = tracker.update(_frame(t)[0], 10 + t).track_ids
    # a pair out of order: no identities, the tracks untouched
    assert (tracker.update(_frame(0.15)[0], 10.15).track_ids == UNTRACKED).all()
    assert tracker.update(_frame(0.3)[0], 10.3).track_ids.tolist() == ids.tolist()
    # a jump back (a bag looping): tracking starts afresh, identities from 0 again
    for t in (0.0, 0.1):
        restarted = tracker.update(_frame(t)[0], t).track_ids
    assert sorted(restarted.tolist()) == [0, 1, 2]


@pytest.mark.parametrize(("buffer_s", "iou"), [(-1.0, 0.2), (float("nan"), 0.2), (1.0, 0.0)])
def test_bad_tracking_settings_are_refused(buffer_s, iou):
    with pytest.raises(ValueError, match="track_"):
        TrackingConfig(buffer_s=buffer_s, match_iou=iou)


def _bytetrack_run(estimator: type, seed: int = 0) -> tuple[list, list]:
    """30 boxes drifting for 60 frames at a jittered 10 Hz with missed detections and a
    1 s gap: every frame's (boxes, identities) and the last frame's predicted boxes."""
    import supervision as sv
    from trackers import ByteTrackTracker

    rng = np.random.default_rng(seed)
    n = 30
    size = rng.uniform(20, 120, (n, 2))
    pos = rng.uniform([0, 0], [1160, 600], (n, 2))
    vel = rng.uniform(-6, 6, (n, 2))
    tracker = ByteTrackTracker(
        lost_track_buffer=45, track_activation_threshold=0.0, minimum_iou_threshold=0.2,
        high_conf_det_threshold=0.0, state_estimator_class=estimator,
    )  # fmt: skip
    frames = []
    for f in [*range(30), *range(40, 70)]:
        keep = rng.random(n) > 0.15
        xy = pos + vel * f + rng.normal(0, 1.5, (n, 2))
        boxes = np.concatenate([xy, xy + size], axis=1)[keep].astype(np.float32)
        det = sv.Detections(xyxy=boxes, confidence=np.full(len(boxes), 0.9, np.float32))
        out = tracker.update(det, timestamp=f / 10 + rng.normal(0, 0.003))
        frames.append((out.xyxy, out.tracker_id))
    return frames, [t.get_state_bbox() for t in tracker.tracks]


def test_axis_kalman_gives_the_librarys_tracks():
    """The per-coordinate filter is the library's XYXY filter computed another way: the
    same identities frame by frame and the same predicted boxes (to rounding)."""
    from trackers.utils.state_representations import XYXYStateEstimator

    from ivtuning_ros.tracking.axis_kalman import AxisKalmanEstimator

    lib_frames, lib_boxes = _bytetrack_run(XYXYStateEstimator)
    our_frames, our_boxes = _bytetrack_run(AxisKalmanEstimator)
    for (lib_xyxy, lib_ids), (our_xyxy, our_ids) in zip(lib_frames, our_frames, strict=True):
        np.testing.assert_array_equal(our_ids, lib_ids)
        np.testing.assert_array_equal(our_xyxy, lib_xyxy)
    assert len(lib_boxes) > 20 and max(lib_frames[-1][1]) > 20
    np.testing.assert_allclose(np.array(our_boxes), np.array(lib_boxes), rtol=0, atol=1e-9)


def test_axis_kalman_state_round_trips_and_refuses_other_noise():
    from ivtuning_ros.tracking.axis_kalman import AxisKalmanEstimator

    est = AxisKalmanEstimator(np.array([10.0, 20.0, 50.0, 80.0]))
    est.set_kf_covariances(measurement_noise=0.1 * np.eye(4), process_noise=0.01 * np.eye(8))
    for step, box in enumerate(([12.0, 21.0, 52.0, 81.0], [14.0, 22.0, 54.0, 82.0])):
        est.predict(1.0 + step, 30.0)
        est.update(np.array(box))
    saved = est.get_state()
    other = AxisKalmanEstimator(np.array([0.0, 0.0, 1.0, 1.0]))
    other.set_state(saved)
    np.testing.assert_array_equal(other.state_to_bbox(), est.state_to_bbox())
    np.testing.assert_array_equal(other.get_state()["state_covariance"], saved["state_covariance"])
    with pytest.raises(ValueError, match="multiples of the identity"):
        est.set_kf_covariances(measurement_noise=np.diag([0.1, 0.1, 0.2, 0.2]))


def test_tracking_metric_counts_an_identity_switch():
    perfect, swapped = TrackingMetric(), TrackingMetric()
    for i in range(10):
        dets, gt_ids = _frame(i * 0.1, n=2, step=0.0)
        perfect.update(dets.boxes, gt_ids, dets.boxes, np.array([0, 1]))
        tracks = np.array([0, 1]) if i < 5 else np.array([1, 0])
        swapped.update(dets.boxes, gt_ids, dets.boxes, tracks)
    good, bad = perfect.compute(), swapped.compute()
    assert good["mota"] == 1.0 and good["idf1"] == 1.0 and good["num_switches"] == 0
    assert bad["num_switches"] == 2 and bad["idf1"] < 1.0
    assert good["num_frames"] == 10 and good["num_unique_objects"] == 2


def test_untracked_detections_are_not_hypotheses():
    metric = TrackingMetric()
    dets, gt_ids = _frame(0.0, n=2)
    metric.update(dets.boxes, gt_ids, dets.boxes, np.array([UNTRACKED, UNTRACKED]))
    scores = metric.compute()
    assert scores["num_misses"] == 2 and scores["num_false_positives"] == 0


def test_box_iou():
    a = np.array([[0, 0, 10, 10]], np.float64)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float64)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 1 / 3, 0.0]])


def test_messages_carry_track_ids():
    from ivtuning_ros.ros.outputs import detections_msg, vision_detections_msg

    dets, _ = _frame(0.0, n=2)
    tracked = Detections(dets.boxes, dets.scores, dets.class_ids, np.array([7, UNTRACKED]))
    ours = detections_msg(tracked, ["person"], _header(), 0, None, 1.0)
    assert [d.track_id for d in ours.detections] == [7, UNTRACKED]
    assert [d.id for d in vision_detections_msg(tracked, ["person"], _header()).detections] == [
        "7",
        "",
    ]
    untracked = detections_msg(dets, ["person"], _header(), 0, None, 1.0)
    assert [d.track_id for d in untracked.detections] == [UNTRACKED] * 2


def _header():
    from std_msgs.msg import Header

    return Header(frame_id="rgb_camera")


def test_synthetic_ground_truth_names_each_actor(tmp_path):
    """The scene generator knows which actor each box is; the replay sidecar keeps it."""
    from ivtuning_ros.data.synthetic import SceneSequence
    from ivtuning_ros.replay.ground_truth import GroundTruth, GroundTruthWriter

    scene = SceneSequence("clear_night", 3, (320, 240))
    frames = [scene.frame(t) for t in (0.0, 0.5)]
    writer = GroundTruthWriter(tmp_path, scene.class_names, {})
    for i, f in enumerate(frames):
        assert f.instance_ids is not None and len(f.instance_ids) == len(f.boxes)
        writer.add(f"f{i}", 10**9 * (i + 1), 320, 240, f.boxes, f.labels, track_ids=f.instance_ids)
    gt = GroundTruth(writer.write())
    assert gt.has_tracks
    for i, f in enumerate(frames):
        np.testing.assert_array_equal(gt.get(10**9 * (i + 1)).track_ids, f.instance_ids)
    # relabelled into a model that lacks some classes: identities follow their boxes
    gt.for_model(["car"])
    kept = gt.get(10**9).track_ids
    car = scene.class_names.index("car")
    np.testing.assert_array_equal(kept, frames[0].instance_ids[frames[0].labels == car])


def test_bench_tracking_scores_synthetic_sequences(tmp_path):
    """`bench tracking` end to end on one short sequence (the shipped synthetic model, or
    an untrained one): latency per update and motmetrics' figures, with and without the
    RGB camera for a stretch."""
    import json

    from ivtuning_ros.paths import models_dir
    from ivtuning_ros.tools.cli import main

    checkpoint = models_dir() / "synthetic.safetensors"
    if not checkpoint.is_file():
        pytest.skip(f"no {checkpoint}")
    out = tmp_path / "tracking.json"
    args = ["bench", "tracking", "--frames", "30", "--boxes", "20", "--conditions", "light_fog",
            "--seeds", "0", "--seconds", "1.5", "--gap", "0.5", "--size", "320x240",
            "--checkpoint", str(checkpoint), "--backend", "torch", "--json", str(out)]  # fmt: skip
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["latency"]["boxes"] == 20 and report["latency"]["p50_ms"] > 0
    assert report["latency_library_filter"]["boxes"] == 20
    assert set(report["summary"]) == {"both cameras", "RGB camera dead mid-sequence"}
    for row in report["sequences"]:
        assert row["num_frames"] == 15 and row["num_unique_objects"] >= 1
