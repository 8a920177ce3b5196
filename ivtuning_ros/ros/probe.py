"""A client of ivtuning_node over DDS: publishes RGB + thermal pairs, collects results.

Used by the node benchmark and the tests (and handy in a Python shell against a running
node). It spins its own executor in a background thread; every received message is kept
with its arrival time so latency is measured publish -> result received. The arrival
time is the middleware's reception time in this process (MessageInfo
received_timestamp, the system clock like the stamps we publish), not the moment our
Python callback runs: rclpy's executor adds 0.3 ms to several ms to that on these
machines, which is the measuring client's own overhead, not the node's.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from ivtuning_ros.msg import DetectionArray, LabelMap
from ivtuning_ros.timestamps import ns_to_stamp, stamp_ns

from . import outputs
from .codec import array_to_image
from .inputs import bare_node


class NodeProbe:
    def __init__(
        self,
        context: rclpy.Context | None = None,
        namespace: str = "",
        rgb_topic: str = "rgb/image_raw",
        thermal_topic: str = "thermal/image_raw",
        extra_topics: tuple[str, ...] = (),
        node_name: str = "ivtuning_node",
    ) -> None:
        """extra_topics: further outputs to subscribe to ("overlay", "mask", "mask_color",
        "vision_detections");
        node_name: the node (in `namespace`) whose /diagnostics status `diagnostics` reads."""
        # a bare node: fewer entities to wait on = earlier arrival times
        name = f"ivtuning_probe_{os.getpid()}_{id(self) % 10000}"
        self.node = bare_node(name, namespace, context)
        self._status_name = f"{node_name}: {self.node.get_namespace().rstrip('/')}/{node_name}"
        self._lock = threading.Lock()
        self.received: dict[str, list[tuple[int, Any]]] = {}
        sensor = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._pubs = {
            "rgb": self.node.create_publisher(Image, rgb_topic, sensor),
            "thermal": self.node.create_publisher(Image, thermal_topic, sensor),
        }
        results = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self._subscribe(DetectionArray, "detections", results)
        self._subscribe(DiagnosticArray, "/diagnostics", results)
        self._subscribe(LabelMap, "label_map", latched)
        for topic in extra_topics:
            msg_type = outputs.Detection2DArray if topic == "vision_detections" else Image
            self._subscribe(msg_type, topic, results)
        self._executor = SingleThreadedExecutor(context=context)
        self._executor.add_node(self.node)
        # spin() waits in C; a spin_once() loop would add its own Python overhead to
        # every arrival time we measure
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def _subscribe(self, msg_type, topic: str, qos: QoSProfile) -> None:
        key = topic.lstrip("/")
        self.received[key] = []

        def keep(msg, info) -> None:
            arrival = info.get("received_timestamp") or time.time_ns()  # 0: rmw lacks it
            with self._lock:
                self.received[key].append((arrival, msg))

        self.node.create_subscription(msg_type, topic, keep, qos)

    # ------------------------------------------------------------------ publishing
    def publish(self, stream: str, msg: Image) -> None:
        self._pubs[stream].publish(msg)

    def publish_pair(
        self,
        rgb: np.ndarray | None,
        thermal: np.ndarray | None,
        stamp: int | None = None,
        thermal_stamp: int | None = None,
        rgb_encoding: str = "rgb8",
        thermal_encoding: str = "mono16",
        frame_id: str = "rgb_camera",
    ) -> int:
        """Publish one pair (either may be None); returns the RGB stamp in ns.

        stamp defaults to now, so arrival - stamp is the end-to-end latency.
        """
        msgs = pair_messages(rgb, thermal, rgb_encoding, thermal_encoding, frame_id)
        return self.publish_messages(msgs, stamp, thermal_stamp)

    def publish_messages(
        self, msgs: dict[str, Image], stamp: int | None = None, thermal_stamp: int | None = None
    ) -> int:
        """Stamp (default: now, at the moment of publishing) and publish prepared images;
        returns the RGB stamp. Reusing prepared messages keeps a fast publisher cheap."""
        stamp = time.time_ns() if stamp is None else stamp
        tstamp = stamp if thermal_stamp is None else thermal_stamp
        for stream, msg in msgs.items():
            msg.header.stamp = ns_to_stamp(tstamp if stream == "thermal" else stamp)
            self.publish(stream, msg)
        return stamp

    def wait_for_node(self, timeout: float = 20.0) -> bool:
        """True once the node's subscriptions are matched to our publishers."""
        return self.wait(
            lambda: all(p.get_subscription_count() > 0 for p in self._pubs.values()), timeout
        )

    def fused_result(self, rgb: np.ndarray, thermal: np.ndarray, timeout: float = 30.0):
        """Hand over pairs until one comes back fused (RGB + thermal); that result, or None.
        Matched on our side does not yet mean the node's readers have matched our writers,
        and a best-effort sample sent before that is lost: this settles discovery both ways."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.result_for(self.publish_pair(rgb, thermal), timeout=1.0)
            if msg is not None and msg.modalities == DetectionArray.MODALITY_BOTH:
                return msg
        return None

    # ------------------------------------------------------------------ results
    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    def messages(self, topic: str) -> list[tuple[int, Any]]:
        with self._lock:
            return list(self.received[topic.lstrip("/")])

    def result_for(self, stamp: int, timeout: float = 10.0, topic: str = "detections"):
        """The message on `topic` whose header stamp equals `stamp`, or None."""

        def find():
            for _, msg in self.messages(topic):
                if stamp_ns(msg.header.stamp) == stamp:
                    return msg
            return None

        self.wait(lambda: find() is not None, timeout)
        return find()

    def diagnostics(self) -> dict[str, str]:
        """Key/values of the node's latest /diagnostics status (plus level and message);
        other ivtuning nodes on the same DDS domain publish theirs on /diagnostics too."""
        msgs = self.messages("diagnostics")
        for _, arr in reversed(msgs):
            for status in arr.status:
                if status.name == self._status_name:
                    out = {kv.key: kv.value for kv in status.values}
                    out["level"] = int.from_bytes(status.level, "little")
                    out["message"] = status.message
                    return out
        return {}

    def wait_diagnostic(self, key: str, predicate=lambda v: True, timeout: float = 5.0):
        """Wait until the latest diagnostics hold `key` with a value passing `predicate`."""
        self.wait(lambda: key in self.diagnostics() and predicate(self.diagnostics()[key]), timeout)
        return self.diagnostics().get(key)

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=2.0)
        self.node.destroy_node()


@contextlib.contextmanager
def probed_node(
    overrides: dict[str, Any], namespace: str = "", extra_topics: tuple[str, ...] = ()
) -> Iterator[tuple[Any, NodeProbe]]:
    """(node, probe): the node in this process, in a context of its own (its own DDS
    participant) spun on a background executor, and a probe in its namespace; both torn
    down on exit."""
    from rclpy.parameter import Parameter

    from .node import IVTuningNode

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = IVTuningNode(
        context=ctx,
        namespace=namespace,
        parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
    )
    executor = MultiThreadedExecutor(num_threads=2, context=ctx)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    probe = NodeProbe(context=ctx, namespace=namespace, extra_topics=extra_topics)
    try:
        yield node, probe
    finally:
        probe.close()
        executor.shutdown()
        node._teardown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def pair_messages(
    rgb: np.ndarray | None,
    thermal: np.ndarray | None,
    rgb_encoding: str = "rgb8",
    thermal_encoding: str = "mono16",
    frame_id: str = "rgb_camera",
) -> dict[str, Image]:
    """Unstamped Image messages for a pair (thermal first, as cameras rarely agree)."""
    msgs = {}
    if thermal is not None:
        msgs["thermal"] = array_to_image(thermal, thermal_encoding, Header(frame_id="thermal"))
    if rgb is not None:
        msgs["rgb"] = array_to_image(rgb, rgb_encoding, Header(frame_id=frame_id))
    return msgs
