"""make-bag writes real rosbag2 folders; bag reading fails clearly on bad bags."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image

from ivtuning_ros.replay.bagio import (
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    BagError,
    hash_bag,
    open_stream,
    typestore,
)
from ivtuning_ros.replay.ground_truth import GT_FILENAME, GroundTruth
from ivtuning_ros.replay.options import apply_transports
from ivtuning_ros.replay.synthetic_bag import RGB_TIMING, THERMAL_TIMING, make_bag
from ivtuning_ros.ros.codec import image_to_rgb, image_to_thermal

TOPICS = {"rgb": "/rgb/image_raw", "thermal": "/thermal/image_raw"}
TYPES = {"rgb": (IMAGE_TYPE,), "thermal": (IMAGE_TYPE,)}


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for storage in ("mcap", "sqlite3"):
        out[storage] = tmp_path_factory.mktemp(storage) / "bag"
        make_bag(
            out[storage], storage=storage, seconds=2.0, seed=3, size=(160, 128), progress=False
        )
    return out


@pytest.fixture(params=["mcap", "sqlite3"])
def bag(request, bags) -> Path:
    return bags[request.param]


def test_bag_is_rosbag2_v9_with_both_streams(bag: Path) -> None:
    storage = "mcap" if any(bag.glob("*.mcap")) else "sqlite3"
    meta = (bag / "metadata.yaml").read_text()
    assert "version: 9" in meta and f"storage_identifier: {storage}" in meta
    with Reader(bag) as reader:
        topics = reader.topics
        assert topics[TOPICS["rgb"]].msgtype == IMAGE_TYPE
        assert topics[TOPICS["rgb"]].msgcount == 21  # 10 Hz over [0, 2] s
        assert topics[TOPICS["thermal"]].msgcount == 18  # 8.7 Hz from 37 ms
        # Type hash recorded = the hash of sensor_msgs/Image in the Kilted type store.
        conn = topics[TOPICS["rgb"]].connections[0]
        assert conn.digest == typestore().hash_rihs01(IMAGE_TYPE)
        receive = [t for _, t, _ in reader.messages()]
        assert receive == sorted(receive)


def test_messages_decode_with_rclpy_and_stamps_model_the_drivers(bag: Path) -> None:
    stamps: dict[str, list[int]] = {"rgb": [], "thermal": []}
    delays: dict[str, list[float]] = {"rgb": [], "thermal": []}
    with open_stream(bag, TOPICS, TYPES) as stream:
        for role, t_ns, raw in stream.messages():
            msg = deserialize_message(raw, Image)
            if role == "rgb":
                assert msg.encoding == "bgr8"
                assert image_to_rgb(msg).shape == (128, 160, 3)
            else:
                assert msg.encoding == "mono16"
                t, _ = image_to_thermal(msg)
                assert 25000 < np.median(t) < 32000  # centikelvin around 0..40 degC
            s = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            stamps[role].append(s)
            delays[role].append((t_ns - s) / 1e9)
        assert stream.error is None
    for role, timing in (("rgb", RGB_TIMING), ("thermal", THERMAL_TIMING)):
        period = np.diff(stamps[role]) / 1e9
        assert abs(period.mean() - 1 / timing.rate_hz) < 0.003
        assert period.std() > 0  # stamping jitter
        assert min(delays[role]) > 0  # received after stamping
    # Thermal stamps are not a fixed phase of RGB's: the pairing has to search.
    offsets = [min(abs(np.array(stamps["thermal"]) - s)) / 1e6 for s in stamps["rgb"]]
    assert max(offsets) > 20


def test_ground_truth_has_every_rgb_stamp(bag: Path) -> None:
    gt = GroundTruth(bag / GT_FILENAME)
    with open_stream(bag, {"rgb": TOPICS["rgb"]}, {"rgb": TYPES["rgb"]}) as stream:
        rgb_stamps = [
            deserialize_message(raw, Image).header.stamp for _, _, raw in stream.messages()
        ]
    assert len(gt.by_stamp) == len(rgb_stamps)
    boxes = 0
    for s in rgb_stamps:
        frame = gt.get(s.sec * 10**9 + s.nanosec)
        assert frame is not None and (frame.width, frame.height) == (160, 128)
        assert gt.load_mask(frame).shape == (128, 160)
        boxes += len(frame.boxes)
        assert (frame.boxes[:, 2:] > frame.boxes[:, :2]).all()
    assert boxes > 0
    assert set(gt.class_names.values()) == {"person", "car", "bicycle", "dog"}


def test_bag_hash_ignores_sidecars_but_not_data(bag: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bag, copy)
    assert hash_bag(copy) == hash_bag(bag)
    (copy / GT_FILENAME).write_text("{}")
    assert hash_bag(copy) == hash_bag(bag)
    meta = copy / "metadata.yaml"
    meta.write_text(meta.read_text() + "\n")
    assert hash_bag(copy) != hash_bag(bag)


def test_missing_topic_lists_what_the_bag_has(bag: Path) -> None:
    with pytest.raises(BagError, match=r"no topic '/camera/x'.*/rgb/image_raw \[sensor_msgs"):
        open_stream(bag, {"rgb": "/camera/x"}, TYPES)


def test_the_first_candidate_topic_the_bag_holds_is_taken(bag: Path) -> None:
    wanted = {"rgb": ("/rgb/image_raw/compressed", "/rgb/image_raw")}
    with open_stream(bag, wanted, TYPES) as stream:
        assert stream.connections["rgb"].topic == "/rgb/image_raw"
    with pytest.raises(BagError, match=r"no topic '/a' or '/b' for rgb; it holds: /rgb/"):
        open_stream(bag, {"rgb": ("/a", "/b")}, TYPES)


def test_compressed_topics_must_follow_image_transport_naming() -> None:
    values = {"rgb_topic": "", "rgb_transport": "raw"}
    apply_transports(values, {"rgb": ("/cam/rgb/compressed", COMPRESSED_TYPE)})
    assert values == {"rgb_topic": "/cam/rgb", "rgb_transport": "compressed"}
    with pytest.raises(BagError, match=r"'/cam/jpeg' carries CompressedImage but is not named"):
        apply_transports(values, {"rgb": ("/cam/jpeg", COMPRESSED_TYPE)})


def test_wrong_message_type_is_named(tmp_path: Path) -> None:
    from ivtuning_ros.replay.bagio import open_writer

    writer = open_writer(tmp_path / "b", "mcap")
    conn = writer.add_connection("/rgb/image_raw", "std_msgs/msg/String", typestore=typestore())
    store = typestore()
    msg = store.types["std_msgs/msg/String"](data="not an image")
    writer.write(conn, 1, store.serialize_cdr(msg, "std_msgs/msg/String"))
    writer.close()
    with pytest.raises(BagError, match=r"carries std_msgs/msg/String, but rgb needs"):
        open_stream(tmp_path / "b", {"rgb": "/rgb/image_raw"}, TYPES)


def test_not_a_bag_and_missing_bag(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="bag not found"):
        open_stream(tmp_path / "nope", TOPICS, TYPES)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="not a rosbag2 bag"):
        open_stream(tmp_path / "empty", TOPICS, TYPES)


def _storage_file(bag: Path) -> Path:
    return next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))


def test_cut_mcap_yields_what_precedes_the_cut(bags: dict[str, Path], tmp_path: Path) -> None:
    bag = bags["mcap"]
    cut = tmp_path / "cut"
    shutil.copytree(bag, cut)
    f = _storage_file(cut)
    f.write_bytes(f.read_bytes()[: int(f.stat().st_size * 0.6)])
    with open_stream(cut, TOPICS, TYPES) as stream:
        n = sum(1 for _ in stream.messages())
        assert "cut short" in stream.note
        assert stream.error is not None and "damaged after" in stream.error
    assert 0 < n < 39


def test_corrupt_sqlite3_reports_damage_after_partial_read(
    bags: dict[str, Path], tmp_path: Path
) -> None:
    bag = bags["sqlite3"]
    bad = tmp_path / "bad"
    shutil.copytree(bag, bad)
    f = _storage_file(bad)
    data = bytearray(f.read_bytes())
    i = len(data) // 2
    data[i : i + 8192] = b"\xff" * 8192  # a damaged page in the middle of the file
    f.write_bytes(bytes(data))
    with open_stream(bad, TOPICS, TYPES) as stream:
        n = sum(1 for _ in stream.messages())
        assert stream.error is not None and "damaged" in stream.error
    assert 0 < n < 39
    cut = tmp_path / "cut"  # a cut sqlite3 database does not open at all: a clear error
    shutil.copytree(bag, cut)
    f = _storage_file(cut)
    f.write_bytes(f.read_bytes()[:4096])
    with pytest.raises(BagError, match="cannot open bag"):
        open_stream(cut, TOPICS, TYPES)
