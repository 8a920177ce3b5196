"""make-bag --from-dataset (a published data set into a rosbag2 with ground truth), and
replay's ground truth matched to the model by class name and tied to frames without
stamp_ns."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ivtuning_ros.data.classes import ClassMismatch
from ivtuning_ros.replay.bagio import typestore
from ivtuning_ros.replay.ground_truth import GroundTruth
from ivtuning_ros.tools.cli import main

H, W = 48, 64


def _msrs(root: Path, count: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        name = f"{i * 4:05d}{'D' if i % 2 else 'N'}"
        for folder, img in (("vi", rng.integers(0, 256, (H, W, 3))),
                            ("ir", rng.integers(0, 256, (H, W)))):  # fmt: skip
            path = root / "test" / folder / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(path), img.astype(np.uint8))
        label = root / "test" / "labels" / f"{name}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("2 0.5 0.5 0.25 0.5\n")  # an MSRS car
    return root


def _read_bag(path: Path) -> dict[str, list[tuple[int, object]]]:
    from rosbags.rosbag2 import Reader

    store = typestore()
    out: dict[str, list] = {}
    with Reader(path) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, store.deserialize_cdr(raw, conn.msgtype)))
    return out


def test_make_bag_from_dataset_writes_pairs_at_the_rate_with_offset(tmp_path):
    root = _msrs(tmp_path / "msrs")
    bag = tmp_path / "bag"
    rc = main(["make-bag", "--from-dataset", str(root), "--split", "test", "--out", str(bag),
               "--rate", "5", "--thermal-rate", "10", "--stamp-offset", "0.03"])  # fmt: skip
    assert rc == 0
    msgs = _read_bag(bag)
    rgb, thermal = msgs["/rgb/image_raw"], msgs["/thermal/image_raw"]
    assert len(rgb) == 6 and len(thermal) == 12
    assert rgb[0][1].encoding == "bgr8" and thermal[0][1].encoding == "mono8"
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in rgb]
    assert np.allclose(np.diff(stamps), 0.2e9)
    th0 = thermal[0][1].header.stamp
    assert th0.sec * 10**9 + th0.nanosec - stamps[0] == 30_000_000
    times = [t for topic in msgs.values() for t, _ in topic]
    assert all(t >= s for t, s in zip([t for t, _ in rgb], stamps, strict=True))
    gt = json.loads((bag / "ground_truth.json").read_text())
    assert [c["name"] for c in gt["categories"]] == ["person", "bicycle", "car"]
    assert [im["stamp_ns"] for im in gt["images"]] == stamps
    assert {a["category_id"] for a in gt["annotations"]} == {2} and len(times) == 18
    # the pixels went in unchanged (bgr8 of the RGB file, mono8 thermal)
    first = cv2.imread(str(root / "test" / "vi" / "00000N.png"))
    assert np.array_equal(np.frombuffer(bytes(rgb[0][1].data), np.uint8).reshape(H, W, 3), first)


def test_replay_scores_a_dataset_bag_by_class_name(tmp_path, checkpoint):
    root = _msrs(tmp_path / "msrs")
    bag = tmp_path / "bag"
    assert main(["make-bag", "--from-dataset", str(root), "--split", "test",
                 "--out", str(bag), "--compressed"]) == 0  # fmt: skip
    out = tmp_path / "replay"
    rc = main(["replay", str(bag), "--offline", "--out", str(out),
               "--set", f"checkpoint={checkpoint}", "--set", "score_threshold=0.0"])  # fmt: skip
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["matched"] == 6
    assert report["input"]["ground_truth_unscored_classes"] == []
    assert report["accuracy"] is not None and np.isfinite(report["accuracy"]["map50"])


def _coco(path: Path, images, categories, annotations) -> Path:
    path.write_text(json.dumps({"images": images, "categories": categories,
                                "annotations": annotations}))  # fmt: skip
    return path


def test_ground_truth_ids_are_mapped_by_name_or_refused(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "width": W, "height": H, "stamp_ns": 5}]
    cats = [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}, {"id": 3, "name": "car"},
            {"id": 4, "name": "tram"}]  # fmt: skip
    anns = [{"id": i, "image_id": 1, "category_id": c, "bbox": [1, 1, 5, 5]}
            for i, c in enumerate((1, 3, 4), 1)]  # fmt: skip
    gt = GroundTruth(_coco(tmp_path / "gt.json", images, cats, anns))
    gt.for_model(("person", "car", "bicycle", "dog"))
    # COCO's person=1 / car=3 become the model's 0 / 1; the tram has no model class
    assert gt.get(5).labels.tolist() == [0, 1] and gt.unscored_classes == ("tram",)
    gt = GroundTruth(tmp_path / "gt.json")
    with pytest.raises(ClassMismatch, match=r"no class name in common \(model classes \['x'\]"):
        gt.for_model(("x",))


def test_ground_truth_without_stamps_is_tied_by_order_or_name_or_refused(tmp_path):
    cats = [{"id": 0, "name": "person"}]
    images = [{"id": i, "file_name": f"f{i}.png", "width": W, "height": H} for i in (2, 1)]
    gt = GroundTruth(_coco(tmp_path / "order.json", images, cats, []))
    assert gt.needs_stamps
    with pytest.raises(ValueError, match=r"2 of them for 3 RGB frames .*add \"stamp_ns\""):
        gt.bind_stamps([30, 10, 20])
    gt.bind_stamps([20, 10])
    assert gt.get(10).image_id == 1 and gt.get(20).image_id == 2
    assert gt.stamp_source.startswith("order")
    named = [
        {"id": 1, "file_name": "1767225600_000000042.png", "width": W, "height": H},
        {"id": 2, "file_name": "1767225600100000000.png", "width": W, "height": H},
    ]
    gt = GroundTruth(_coco(tmp_path / "named.json", named, cats, []))
    assert not gt.needs_stamps and gt.stamp_source == "file names"
    assert gt.get(1767225600 * 10**9 + 42).image_id == 1
    mixed = [*named[:1], {"id": 3, "file_name": "x.png", "width": W, "height": H}]
    with pytest.raises(ValueError, match="1 of 2 images have no stamp_ns"):
        GroundTruth(_coco(tmp_path / "mixed.json", mixed, cats, []))
