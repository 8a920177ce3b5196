"""BagPlayer, BagClock and Recorder over real DDS (no model): bytes, pacing, recorded bag,
the bag's time on /clock, type hashes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader

from ivtuning_ros.replay.bagio import IMAGE_TYPE, open_stream, typestore
from ivtuning_ros.replay.dds import BagClock, BagPlayer, Recorder, ReplayError, header_stamp_ns
from ivtuning_ros.replay.synthetic_bag import make_bag

TOPICS = {"rgb": "/rgb/image_raw", "thermal": "/thermal/image_raw"}


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dds") / "bag"
    make_bag(out, storage="mcap", seconds=1.5, seed=1, size=(96, 64), progress=False)
    return out


@pytest.fixture
def context():
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _spin(node, ctx):
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    t = threading.Thread(target=ex.spin, daemon=True)
    t.start()
    return ex, t


def test_player_to_recorder_round_trip(bag: Path, tmp_path: Path, context) -> None:
    """Every message arrives byte for byte, paced like the bag, recorded into a valid bag."""
    player_node = rclpy.create_node("player", context=context)
    rec_node = rclpy.create_node("recorder", context=context)
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    recorder = Recorder(
        rec_node,
        tmp_path / "rec",
        "sqlite3",
        {t: IMAGE_TYPE for t in TOPICS.values()},
        lambda _t: reliable,
        keep=lambda _t: True,
    )
    executors = [_spin(n, context) for n in (player_node, rec_node)]
    try:
        with open_stream(bag, TOPICS, {r: (IMAGE_TYPE,) for r in TOPICS}) as stream:
            player = BagPlayer(player_node, stream, TOPICS, rate=2.0, qos_depth=100)
            player.wait_for_subscribers(10.0)
            log = player.play(progress=False)
        deadline = time.monotonic() + 10
        while len(recorder.kept) < 29 and time.monotonic() < deadline:
            time.sleep(0.05)
        recorder.close()
    finally:
        for ex, t in executors:
            ex.shutdown()
            t.join(5)
    sent = {r: [s for s, _ in v] for r, v in log.sent.items()}
    assert len(sent["rgb"]) == 16 and len(sent["thermal"]) == 13
    # Paced at 2x: the 1.5 s recording plays in about 0.75 s.
    with Reader(bag) as reader:
        span_bag = (reader.end_time - reader.start_time) / 1e9
    assert span_bag / 2 - 0.05 < log.wall_s < span_bag / 2 + 0.5
    got = {topic: [] for topic in TOPICS.values()}
    for r in recorder.kept:
        got[r.topic].append(header_stamp_ns(r.raw))
    assert got[TOPICS["rgb"]] == sent["rgb"] and got[TOPICS["thermal"]] == sent["thermal"]
    # The recorded bag reads back, with the same bytes as the input bag.
    with Reader(tmp_path / "rec") as rec, Reader(bag) as src:
        assert rec.message_count == 29
        recorded = sorted(bytes(raw) for _, _, raw in rec.messages())
        original = sorted(bytes(raw) for _, _, raw in src.messages())
        assert recorded == original


def test_clock_gives_a_sim_time_node_the_bags_time(bag: Path, context) -> None:
    """With a BagClock, a node on use_sim_time sees each frame at the bag time it was
    recorded (receive time): never at a zero clock, never at today's time, and its clock
    goes on after the bag ends until the clock stops."""
    from sensor_msgs.msg import Image

    player_node = rclpy.create_node("clock_player", context=context)
    listener = rclpy.create_node(
        "sim_listener",
        context=context,
        parameter_overrides=[Parameter("use_sim_time", value=True)],
    )
    seen: list[tuple[int, int]] = []  # (listener's ROS time, header.stamp) per RGB frame
    listener.create_subscription(
        Image,
        TOPICS["rgb"],
        lambda m: seen.append(
            (
                listener.get_clock().now().nanoseconds,
                m.header.stamp.sec * 10**9 + m.header.stamp.nanosec,
            )
        ),
        QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE),
    )
    listener.create_subscription(Image, TOPICS["thermal"], lambda _m: None, 10)
    executors = [_spin(n, context) for n in (player_node, listener)]
    clock = BagClock(player_node, hz=100.0)
    try:
        with open_stream(bag, TOPICS, {r: (IMAGE_TYPE,) for r in TOPICS}) as stream:
            player = BagPlayer(player_node, stream, TOPICS, rate=2.0, qos_depth=100, clock=clock)
            player.wait_for_subscribers(10.0)
            player.play(progress=False)
        time.sleep(0.3)
        after_end = listener.get_clock().now().nanoseconds
        time.sleep(0.3)
        later = listener.get_clock().now().nanoseconds
        clock.stop()
    finally:
        for ex, t in executors:
            ex.shutdown()
            t.join(5)
    assert len(seen) == 16
    with Reader(bag) as reader:
        start, end = reader.start_time, reader.end_time
    # The synthetic drivers stamp before sending; a frame arrives within ~0.1 s of bag time
    # after its stamp (transport delay, the 100 Hz clock's step, scheduling at 2x).
    lags_s = [(now - stamp) / 1e9 for now, stamp in seen]
    assert all(-0.05 < lag < 0.5 for lag in lags_s), lags_s
    assert all(start - 0.5e9 < now < end + 0.5e9 for now, _ in seen)
    assert end < after_end < later  # still running after the last message, at 2x
    assert 0.3 < (later - after_end) / 1e9 < 1.0


def test_our_message_type_hash_matches_rclpy(context) -> None:
    """The hash rosbags writes for DetectionArray equals the one rclpy announces on DDS."""
    from ivtuning_ros.msg import DetectionArray

    node = rclpy.create_node("hash_probe", context=context)
    node.create_publisher(DetectionArray, "/hash_probe/detections", 1)
    deadline = time.monotonic() + 5
    infos = []
    while not infos and time.monotonic() < deadline:
        infos = node.get_publishers_info_by_topic("/hash_probe/detections")
        time.sleep(0.05)
    assert infos, "publisher not visible in the graph"
    announced = str(infos[0].topic_type_hash)
    expected = typestore().hash_rihs01("ivtuning_ros/msg/DetectionArray")
    assert announced == expected


def test_wait_for_subscribers_names_the_topic(bag: Path, context) -> None:
    node = rclpy.create_node("lonely_player", context=context)
    with open_stream(bag, TOPICS, {r: (IMAGE_TYPE,) for r in TOPICS}) as stream:
        player = BagPlayer(node, stream, {"rgb": "/nobody/listens", "thermal": "/x"}, rate=1.0)
        with pytest.raises(ReplayError, match=r"no subscriber on /nobody/listens"):
            player.wait_for_subscribers(0.3)
