"""Our interfaces: they import from a fresh process, and every field crosses real DDS."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import ColorRGBA, Header

from ivtuning_ros.msg import Detection, DetectionArray, LabelMap
from ivtuning_ros.replay.bagio import typestore
from ivtuning_ros.ros.outputs import vision_detections_msg
from ivtuning_ros.types import Detections

# rosidl's type hash of vision_msgs 4.x Detection2DArray (Humble and newer), as upstream
# builds generate it: the same hash is what lets our pip-only compat/vision_msgs talk to
# nodes built against the real package.
VISION_DETECTION2D_ARRAY_HASH = (
    "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968"
)


def test_messages_import_in_fresh_process_without_extra_environment():
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    code = (
        "from ivtuning_ros.msg import Detection, DetectionArray, LabelMap; "
        "from vision_msgs.msg import Detection2DArray; "
        "import ivtuning_ros.tools.cli; "
        "type(Detection2DArray).__import_type_support__(); "  # its C libraries load too
        "print(DetectionArray.MODALITY_THERMAL_ONLY, Detection.__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "ivtuning_ros.msg._detection"]


def _detection(i: int) -> Detection:
    return Detection(
        class_id=i,
        class_name=f"class-{i}",
        score=0.25 * (i + 1),
        x_min=1.5 + i,
        y_min=2.5 + i,
        x_max=100.25 + i,
        y_max=200.75 + i,
    )


def _header() -> Header:
    return Header(stamp=Time(sec=1_700_000_123, nanosec=456_789_000), frame_id="rgb_optical")


def _sample_messages():
    array = DetectionArray(
        header=_header(),
        detections=[_detection(0), _detection(3)],
        modalities=DetectionArray.MODALITY_RGB_ONLY,
        thermal_stamp=Time(sec=1_700_000_123, nanosec=400_000_000),
        inference_time_ms=12.5,
    )
    label_map = LabelMap(
        header=_header(),
        class_ids=[0, 1, 2, 65535],
        class_names=["background", "person", "car", "unlabeled"],
        colors=[ColorRGBA(r=0.0, g=0.5, b=1.0, a=1.0) for _ in range(4)],
    )
    detections = Detections(
        np.array([[1.5, 2.5, 100.25, 200.75], [3.0, 4.0, 5.0, 6.0]], np.float32),
        np.array([0.75, 0.5], np.float32),
        np.array([1, 7], np.int64),
    )
    vision = vision_detections_msg(detections, ["background", "person"], _header())
    vision.detections[0].results[0].pose.pose.position.z = 2.5  # every nested field crosses
    vision.detections[1].id = "track-7"
    return [
        (Detection, _detection(7)),
        (DetectionArray, array),
        (LabelMap, label_map),
        (type(vision), vision),
    ]


def _fields(msg):
    """Every field as plain Python values, recursing into nested messages."""
    if hasattr(msg, "get_fields_and_field_types"):
        return {name: _fields(getattr(msg, name)) for name in msg.get_fields_and_field_types()}
    if isinstance(msg, np.ndarray):  # fixed-size numeric arrays (a pose covariance)
        return msg.tolist()
    if isinstance(msg, list | tuple) or type(msg).__name__ == "array":
        return [_fields(m) for m in msg]
    return msg


@pytest.fixture
def ros_context():
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


@pytest.mark.parametrize(
    "msg_type,message", _sample_messages(), ids=lambda v: getattr(v, "__name__", "")
)
def test_every_field_round_trips_between_two_nodes(ros_context, msg_type, message):
    qos = QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    talker = rclpy.create_node("msg_talker", context=ros_context)
    listener = rclpy.create_node("msg_listener", context=ros_context)
    received = []
    topic = f"/ivtuning_test/{msg_type.__name__.lower()}"
    publisher = talker.create_publisher(msg_type, topic, qos)
    listener.create_subscription(msg_type, topic, received.append, qos)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(talker)
    executor.add_node(listener)
    try:
        publisher.publish(message)
        deadline = time.monotonic() + 20.0
        while not received and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert received, f"no {msg_type.__name__} arrived over DDS within 20 s"
        assert _fields(received[0]) == _fields(message)
        assert received[0] is not message
    finally:
        executor.shutdown()
        talker.destroy_node()
        listener.destroy_node()


def test_vision_detections_carry_upstream_vision_msgs_type_hash(ros_context):
    """The hash DDS discovery announces for ~/vision_detections: a subscriber built
    against the real vision_msgs matches only if it equals upstream's."""
    from vision_msgs.msg import Detection2DArray

    node = rclpy.create_node("vision_msgs_hash", context=ros_context)
    try:
        node.create_publisher(Detection2DArray, "/ivtuning_test/vision_hash", 1)
        (info,) = node.get_publishers_info_by_topic("/ivtuning_test/vision_hash")
        assert info.topic_type == "vision_msgs/msg/Detection2DArray"
        assert str(info.topic_type_hash) == VISION_DETECTION2D_ARRAY_HASH
    finally:
        node.destroy_node()
    # and the replay's bag writer records it under the same hash
    assert typestore().hash_rihs01(info.topic_type) == VISION_DETECTION2D_ARRAY_HASH
