"""Every output topic the node can publish, by key; a task names the ones it adds.

`detections` and `overlay` are published for every task; `tasks/*.py` list the rest in
`output_topics`. Adding an output topic: an entry in `all_topics`, its message builder in
`outputs.py`, a publish step in `node.py`'s `_publish`, its key in the tasks that make it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from ivtuning_ros.msg import DetectionArray, LabelMap

from . import outputs

# Late joiners (rviz, loggers) still get the class names: reliable, transient local.
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
EVERY_TASK = ("detections", "overlay")


@dataclass(frozen=True)
class OutputTopic:
    msg_type: Any  # None when its message package is not installed
    name: str  # relative: resolved under the node's namespace
    qos: QoSProfile | int
    missing_why: str = ""  # logged when msg_type is None


def all_topics() -> dict[str, OutputTopic]:
    """Every output topic by key (built per call: optional message types may be absent)."""
    return {
        "detections": OutputTopic(DetectionArray, "detections", 10),
        "overlay": OutputTopic(Image, "overlay", 2),
        "label_map": OutputTopic(LabelMap, "label_map", LATCHED),
        "vision_detections": OutputTopic(
            outputs.Detection2DArray,
            "vision_detections",
            10,
            "vision_msgs is not installed: vision_detections is not published "
            "(detections has the same boxes)",
        ),
        "mask": OutputTopic(Image, "mask", 2),
        "mask_color": OutputTopic(Image, "mask_color", 2),
        "saliency": OutputTopic(Image, "saliency", 2),
    }


def topics_for(task_topics: tuple[str, ...]) -> dict[str, OutputTopic]:
    """The topics a task's node publishes (unknown keys are a programming error)."""
    topics = all_topics()
    return {key: topics[key] for key in (*EVERY_TASK, *task_topics)}
