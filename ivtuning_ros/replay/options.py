"""What a replay runs with: the options and the node parameters they resolve to.

The node's parameters come from its own table (ros/params.py) overlaid with a ROS 2
params file and `--set` overrides, then checked by the node's own validation, so a
replay fails before starting anything when the node would refuse its configuration.
The bag topics come from `--topics`, else the params' rgb_topic / thermal_topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ivtuning_ros.replay.matching import OutputRecord
from ivtuning_ros.ros.params import SPECS, default_values, validate
from ivtuning_ros.types import CAMERAS

NODE_NAME = "ivtuning_node"
CLOCK_HZ = 40.0  # /clock rate of `--clock` without a value, as `ros2 bag play --clock`


@dataclass
class ReplayOptions:
    bag: Path
    out: Path
    gt: Path | None = None  # default: BAG/ground_truth.json when present
    rate: float = 1.0
    clock_hz: float = 0.0  # DDS: the bag's time on /clock at this rate, node on sim time
    topics: dict[str, str] | None = None  # role -> bag topic; default from the params
    params: Path | None = None  # ROS 2 params file for the node
    overrides: dict[str, Any] = field(default_factory=dict)  # node parameters on top
    offline: bool = False
    external: bool = False  # DDS: a node is already running; only play and record
    node_name: str = NODE_NAME
    namespace: str = "/"  # the node's namespace (its outputs are relative to it)
    record_overlay: bool = False  # the overlay is drawn lazily: recording it costs node time
    overlays: int = 6
    progress: bool = True
    startup_timeout_s: float = 30.0


@dataclass
class RunData:
    """What one run produced, in the same shape for both modes."""

    rgb_sent: list[tuple[int, int]]
    thermal_stamps: list[int]
    outputs: list[OutputRecord]
    task: str
    class_names: tuple[str, ...]
    model: dict[str, Any]
    node_counters: dict[str, Any]
    extra: dict[str, Any]


def load_params_file(path: Path | None) -> dict[str, Any]:
    """The node's ros__parameters from a ROS 2 params file ('/**' or the node's name)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"params file not found: {path}")
    doc = yaml.safe_load(path.read_text()) or {}
    values: dict[str, Any] = {}
    for key in ("/**", NODE_NAME, f"/{NODE_NAME}"):
        section = doc.get(key) if isinstance(doc, dict) else None
        if isinstance(section, dict):
            values.update(section.get("ros__parameters") or {})
    unknown = sorted(set(values) - set(SPECS))
    if unknown:
        raise ValueError(f"{path}: unknown node parameter(s) {', '.join(unknown)}")
    return values


def _like(default: Any, value: Any) -> Any:
    """An override in the parameter's declared type where that is lossless (1 -> 1.0):
    rclpy refuses a value whose type differs from the declaration."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, list) and default and isinstance(value, list):
        return [_like(default[0], v) for v in value]
    return value


def _absolute(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


def parse_topics(spec: str | None) -> dict[str, str] | None:
    """'rgb=/cam/image,thermal=/lwir/image' -> {"rgb": ..., "thermal": ...}."""
    if not spec:
        return None
    out = {}
    for item in spec.split(","):
        role, sep, topic = item.partition("=")
        role = role.strip()
        if not sep or role not in CAMERAS or not topic.strip():
            raise ValueError(f"--topics expects rgb=TOPIC,thermal=TOPIC; got {item!r}")
        out[role] = _absolute(topic.strip())
    return out


def topic_candidates(opts: ReplayOptions, topics: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """Bag topics to look for per role: one given with --topics, else the node's topic or
    its image_transport compressed twin `<topic>/compressed`, as a robot's bag holds it."""
    given = opts.topics or {}
    return {r: (t,) if r in given else (t, f"{t}/compressed") for r, t in topics.items()}


def apply_transports(values: dict[str, Any], found: dict[str, tuple[str, str]]) -> None:
    """Point the node at each camera as the bag carries it ({role: (topic, type)}): a
    CompressedImage topic `<base>/compressed` is `<base>` with `<role>_transport:
    compressed`."""
    from ivtuning_ros.replay.bagio import COMPRESSED_TYPE, BagError

    for role, (topic, msgtype) in found.items():
        values[f"{role}_topic"] = topic
        compressed = msgtype == COMPRESSED_TYPE
        if compressed and not topic.endswith("/compressed"):
            raise BagError(
                f"{role} topic {topic!r} carries CompressedImage but is not named "
                "<camera topic>/compressed (image_transport's convention), which the node "
                "subscribes to"
            )
        values[f"{role}_transport"] = "compressed" if compressed else "raw"
        if compressed:
            values[f"{role}_topic"] = topic.removesuffix("/compressed")


def node_parameters(opts: ReplayOptions) -> tuple[dict[str, Any], dict[str, str]]:
    """(all node parameter values, bag topics by role), checked like the node checks them."""
    if not opts.rate > 0:
        raise ValueError(f"--rate must be positive, got {opts.rate}")
    if opts.clock_hz < 0 or (opts.clock_hz and opts.offline):
        raise ValueError(
            f"--clock {opts.clock_hz:g}: a /clock rate must be positive, and only a DDS replay "
            "publishes one (the offline replay runs on the bag's time already)"
        )
    from_file = load_params_file(opts.params)
    unknown = sorted(set(opts.overrides) - set(SPECS))
    if unknown:
        raise ValueError(f"unknown node parameter(s) {', '.join(unknown)}")
    values = default_values()
    values.update(from_file)
    values.update({k: _like(SPECS[k].default, v) for k, v in opts.overrides.items()})
    topics = {r: _absolute(str(values[f"{r}_topic"])) for r in CAMERAS}
    topics.update(opts.topics or {})
    values.update({f"{r}_topic": t for r, t in topics.items()})  # the node listens on the bag's
    for name, value in values.items():
        rng = SPECS[name].range
        if rng is not None and not rng[0] <= value <= rng[1]:
            raise ValueError(f"node parameter {name}={value} outside [{rng[0]}, {rng[1]}]")
    reason = validate(values)
    if reason:
        raise ValueError(f"node parameters: {reason}")
    return values, topics
