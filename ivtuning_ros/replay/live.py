"""Replay through a live node over DDS: host it (or find it), play, record, collect.

The node runs in this process on its own executor thread (`ivtuning_node`, started
with the resolved parameters) or is already running (`external`). The bag is played by
`BagPlayer`, every output topic of the node is recorded by `Recorder` into
OUT/output_bag, and the recorded results become `OutputRecord`s for the accounting.
With `--clock` the bag's time also goes out on /clock and the hosted node runs on it
(use_sim_time), so the latency on its /diagnostics is measured in the recording's time.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rclpy.serialization import deserialize_message

from ivtuning_ros.replay.bagio import IMAGE_TYPE, BagStream
from ivtuning_ros.replay.dds import BagClock, BagPlayer, Recorder, ReplayError
from ivtuning_ros.replay.matching import OutputRecord
from ivtuning_ros.replay.options import NODE_NAME, ReplayOptions, RunData
from ivtuning_ros.tasks import task_publishing
from ivtuning_ros.timestamps import stamp_ns
from ivtuning_ros.types import CAMERAS, Detections

DETECTIONS_TYPE = "ivtuning_ros/msg/DetectionArray"
LABEL_MAP_TYPE = "ivtuning_ros/msg/LabelMap"
_INFRASTRUCTURE = ("/rosout", "/parameter_events")


def _qos_like_publisher(node, topic: str):
    """A recording QoS compatible with the publisher's (reliable/transient-local stays so)."""
    from rclpy.qos import HistoryPolicy, QoSProfile

    infos = node.get_publishers_info_by_topic(topic)
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100)
    if infos:
        qos.reliability = infos[0].qos_profile.reliability
        qos.durability = infos[0].qos_profile.durability
    return qos


def _type_name(msg_class: type) -> str:
    """'pkg/msg/Name' of an rclpy message class."""
    return f"{msg_class.__module__.split('.')[0]}/msg/{msg_class.__name__}"


def _recordable(topic: str) -> bool:
    return topic not in _INFRASTRUCTURE and not topic.endswith("/transition_event")


def _own_output_topics(node) -> dict[str, str]:
    """Topics an in-process node publishes, from the node itself (no graph lookup)."""
    return {
        p.topic_name: _type_name(p.msg_type) for p in node.publishers if _recordable(p.topic_name)
    }


def _external_output_topics(
    host, node_name: str, namespace: str, timeout_s: float
) -> dict[str, str]:
    """Topics a running node publishes (name -> type), once its results topic is visible."""
    deadline = time.monotonic() + timeout_s
    while True:
        matches = [
            (n, ns)
            for n, ns in host.get_node_names_and_namespaces()
            if n == node_name and ns == namespace
        ]
        if len(matches) > 1:
            raise ReplayError(
                f"{len(matches)} nodes named {namespace.rstrip('/')}/{node_name} on the ROS "
                "graph: stop the extra ones, or use another namespace or ROS_DOMAIN_ID"
            )
        found = {}
        for name, ns in matches:
            for topic, types in host.get_publisher_names_and_types_by_node(name, ns):
                if _recordable(topic):
                    found[topic] = types[0]
        if DETECTIONS_TYPE in found.values():
            return found
        if time.monotonic() > deadline:
            raise ReplayError(
                f"no node {node_name!r} publishing {DETECTIONS_TYPE} after {timeout_s:.0f} s "
                f"(seen: {sorted(found) if matches else 'no node of that name'}): is it "
                "running, active and in this ROS_DOMAIN_ID?"
            )
        time.sleep(0.1)


class _Spinner:
    """One executor on its own thread."""

    def __init__(self, node, context) -> None:
        from rclpy.executors import SingleThreadedExecutor

        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(node)
        self.thread = threading.Thread(target=self._spin, daemon=True, name=node.get_name())
        self.thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        with contextlib.suppress(ExternalShutdownException):
            self.executor.spin()

    def stop(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(timeout=5.0)


def _start_node(context, values: dict[str, Any], namespace: str, use_sim_time: bool):
    """The real node, in this process, configured and activated (or a clear error)."""
    from rclpy.parameter import Parameter

    from ivtuning_ros.ros.node import IVTuningNode
    from ivtuning_ros.ros.pipeline import resolve_checkpoint

    resolve_checkpoint(str(values["checkpoint"]))  # FileNotFoundError naming the paths tried
    node = IVTuningNode(
        context=context,
        namespace=namespace,
        parameter_overrides=[
            *(Parameter(k, value=v) for k, v in values.items()),
            Parameter("use_sim_time", value=use_sim_time),
        ],
    )
    if node.state_label != "active":
        node.destroy_node()
        raise ReplayError(
            f"{NODE_NAME} did not become active (state {node.state_label}); its log above "
            "says why (checkpoint, backend)"
        )
    return node


def _recorded_topics(
    topics: dict[str, str], record_overlay: bool
) -> tuple[dict[str, str], list[str], set[str]]:
    """The node's output topics to record (overlays only when asked: they are large),
    those left out, and the class-id mask topics among them."""
    skipped = sorted(
        t for t, ty in topics.items() if ty == IMAGE_TYPE and t.rsplit("/", 1)[-1] == "overlay"
    )
    if record_overlay:
        skipped = []
    record = {t: ty for t, ty in topics.items() if t not in skipped}
    masks = {t for t, ty in record.items() if ty == IMAGE_TYPE and t.endswith("/mask")}
    return record, skipped, masks


def _read_recording(
    kept: list, record: dict[str, str], mask_topics: set[str], node_fqn: str
) -> tuple[list[OutputRecord], tuple[str, ...], dict]:
    """The node's results (each with its mask, if any), its class names and its last
    diagnostics status, from the messages the recorder kept."""
    outputs, masks, names, status = [], {}, (), {}
    for r in kept:
        ty = record[r.topic]
        if ty == DETECTIONS_TYPE:
            outputs.append(_detections_record(r.raw, r.receive_ns))
        elif ty == LABEL_MAP_TYPE:
            names = _label_names(r.raw)
        elif r.topic in mask_topics:
            stamp, mask = _mask_from_raw(r.raw)
            masks[stamp] = mask
        else:
            status = _node_status(r.raw, node_fqn) or status
    for out in outputs:
        out.mask = masks.get(out.stamp_ns)
    return outputs, names, status


def _model_info(values: dict[str, Any], external: bool, startup_s: float) -> dict[str, Any]:
    info = {"checkpoint": str(values["checkpoint"])}
    if values.get("fallback_checkpoint"):
        info["fallback_checkpoint"] = str(values["fallback_checkpoint"])
    info.update(backend=values["backend"], node="external" if external else "in-process",
                startup_s=round(startup_s, 2))  # fmt: skip
    return info


def _shut_down(context, spinners, clock, recorder, node, host) -> None:
    """Stop what replay_dds started, in reverse order, whatever got started."""
    import rclpy

    if clock is not None:
        clock.stop()
    if recorder is not None:
        recorder.close()
    if node is not None:
        node.trigger_shutdown()
    for s in reversed(spinners):
        s.stop()
    for n in (host, node):
        if n is not None:
            n.destroy_node()
    rclpy.try_shutdown(context=context)


def replay_dds(stream: BagStream, opts: ReplayOptions, values: dict[str, Any]) -> RunData:
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, args=["ivtuning_replay"])
    spinners: list[_Spinner] = []
    node = host = recorder = clock = None
    try:
        t0 = time.monotonic()
        if not opts.external:
            node = _start_node(context, values, opts.namespace, use_sim_time=opts.clock_hz > 0)
            spinners.append(_Spinner(node, context))
        startup_s = time.monotonic() - t0
        host = rclpy.create_node("ivtuning_replay", context=context)
        spinners.append(_Spinner(host, context))
        topics = (
            _external_output_topics(host, opts.node_name, opts.namespace, opts.startup_timeout_s)
            if node is None
            else _own_output_topics(node)
        )
        record, skipped, mask_topics = _recorded_topics(topics, opts.record_overlay)
        kept_types = {DETECTIONS_TYPE, LABEL_MAP_TYPE, "diagnostic_msgs/msg/DiagnosticArray"}
        recorder = Recorder(
            host,
            opts.out / "output_bag",
            "mcap",
            record,
            lambda t: _qos_like_publisher(host, t),
            keep=lambda t: record[t] in kept_types or t in mask_topics,
        )
        clock = BagClock(host, opts.clock_hz) if opts.clock_hz > 0 else None
        player = BagPlayer(
            host, stream, {r: stream.connections[r].topic for r in CAMERAS}, opts.rate, clock=clock
        )
        player.wait_for_subscribers(opts.startup_timeout_s)
        time.sleep(0.5)  # let the recorder's subscriptions match before the first result
        log = player.play(progress=opts.progress)
        results = [t for t, ty in record.items() if ty == DETECTIONS_TYPE]
        _drain(lambda: sum(recorder.counts[t] for t in results), float(values["sync_timeout"]))
        recorder.close()
        kept = list(recorder.kept)
        counts = dict(recorder.counts)
    finally:
        _shut_down(context, spinners, clock, recorder, node, host)

    fqn = f"{opts.namespace.rstrip('/')}/{opts.node_name}"
    outputs, names, status = _read_recording(kept, record, mask_topics, fqn)
    task = task_publishing({t.rsplit("/", 1)[-1] for t in record}).name
    return RunData(
        rgb_sent=log.sent["rgb"],
        thermal_stamps=[s for s, _ in log.sent["thermal"]],
        outputs=outputs,
        task=task,
        class_names=names,
        model=_model_info(values, opts.external, startup_s),
        node_counters=_counters(status),
        extra={
            "node_latency": _node_latency(status, opts),
            "player": {
                "clock_hz": opts.clock_hz,
                "wall_s": round(log.wall_s, 3),
                "max_lag_behind_schedule_ms": round(log.late_s_max * 1e3, 2),
                "rgb_published": len(log.sent["rgb"]),
                "thermal_published": len(log.sent["thermal"]),
            },
            "output_bag": {
                "path": str(opts.out / "output_bag"),
                "messages": counts,
                "not_recorded": skipped,
            },
        },
    )


def _drain(results: Callable[[], int], sync_timeout: float, cap_s: float = 30.0) -> None:
    """Wait until results stop arriving (the node finished its last frames)."""
    quiet = max(1.5, 2 * sync_timeout + 0.5)
    start = time.monotonic()
    last_n, last_change = -1, time.monotonic()
    while time.monotonic() - start < cap_s:
        n = results()
        if n != last_n:
            last_n, last_change = n, time.monotonic()
        elif time.monotonic() - last_change > quiet:
            return
        time.sleep(0.1)


def _detections_record(raw: bytes, receive_ns: int) -> OutputRecord:
    from ivtuning_ros.msg import DetectionArray

    msg = deserialize_message(raw, DetectionArray)
    d = msg.detections
    dets = Detections(
        np.array([[x.x_min, x.y_min, x.x_max, x.y_max] for x in d], np.float32).reshape(-1, 4),
        np.array([x.score for x in d], np.float32),
        np.array([x.class_id for x in d], np.int64),
        np.array([x.track_id for x in d], np.int64),
    )
    return OutputRecord(
        stamp_ns=stamp_ns(msg.header.stamp),
        receive_ns=receive_ns,
        modalities=int(msg.modalities),
        thermal_stamp_ns=stamp_ns(msg.thermal_stamp),
        inference_ms=float(msg.inference_time_ms),
        detections=dets,
    )


def _label_names(raw: bytes) -> tuple[str, ...]:
    from ivtuning_ros.msg import LabelMap

    msg = deserialize_message(raw, LabelMap)
    names = dict(zip(msg.class_ids, msg.class_names, strict=True))
    return tuple(names.get(i, str(i)) for i in range(max(names, default=-1) + 1))


def _mask_from_raw(raw: bytes) -> tuple[int, np.ndarray]:
    from sensor_msgs.msg import Image

    from ivtuning_ros.ros.codec import check_image

    msg = deserialize_message(raw, Image)
    check_image(msg, ("mono8",), "mask")
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
    return stamp_ns(msg.header.stamp), rows[:, : msg.width].copy()


def _node_status(raw: bytes, fully_qualified_name: str) -> dict[str, str] | None:
    """The key-values of the node's status in one /diagnostics message."""
    from diagnostic_msgs.msg import DiagnosticArray

    msg = deserialize_message(raw, DiagnosticArray)
    for status in msg.status:
        if status.name.endswith(fully_qualified_name):
            return {kv.key: kv.value for kv in status.values}
    return None


def _counters(status: dict[str, str]) -> dict[str, Any]:
    """The node's cumulative counters (and their reasons)."""
    return {
        k.removeprefix("count "): int(v) for k, v in status.items() if k.startswith("count ")
    } | {k: v for k, v in status.items() if k.startswith("reason ")}


def _node_latency(status: dict[str, str], opts: ReplayOptions) -> dict[str, Any]:
    """What the node itself reports as latency (ROS time - header.stamp, over its last
    results). Without --clock its ROS time is today's and the stamps are the recording's,
    so the figures are left out rather than reported as months."""
    if not opts.clock_hz:
        return {"note": "not measured: replay with --clock for the node's own figures"}
    figures = {}
    for q in ("p50", "p95"):
        text = status.get(f"latency {q} (ms)", "")
        figures[f"{q}_ms"] = float(text) if text else None
    if abs(figures["p50_ms"] or 0.0) > 3.6e6:
        return {
            "note": f"not on the bag's clock (p50 {figures['p50_ms'] / 3.6e6:.0f} h): start an "
            "--external node with use_sim_time:=true"
        }
    return figures | {
        "definition": f"node's ROS time (the bag's, on /clock at {opts.clock_hz:g} Hz) - "
        f"header.stamp; wall-clock delays appear scaled by --rate ({opts.rate:g})"
    }
