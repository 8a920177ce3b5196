"""`ivtuning replay`: a bag through the node (over DDS, or offline), scored and reported.

DDS mode starts the real `ivtuning_node` in this process on its own executor thread
(or uses one already running, `external`), plays the bag with `BagPlayer`, records
every output topic of the node with `Recorder` into `OUT/output_bag`, then matches the
recorded results to the ground truth by header stamp. Offline mode runs the same
synchroniser, conversion and Predictor on the bag directly (offline.py). Both end in
`finish`: the accounting, the terminal table, report.json, plots and overlay frames.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rclpy.serialization import deserialize_message

from ivtuning_ros.replay import plots
from ivtuning_ros.replay.bagio import IMAGE_TYPE, BagStream, hash_bag, open_stream
from ivtuning_ros.replay.ground_truth import GT_FILENAME, GroundTruth
from ivtuning_ros.replay.matching import OutputRecord, account
from ivtuning_ros.replay.report import file_hash, library_versions, render_table
from ivtuning_ros.ros.params import SPECS, node_config, validate
from ivtuning_ros.types import Detections

ROLES = ("rgb", "thermal")
NODE_NAME = "ivtuning_node"
DETECTIONS_TYPE = "ivtuning_ros/msg/DetectionArray"
LABEL_MAP_TYPE = "ivtuning_ros/msg/LabelMap"
_INFRASTRUCTURE = ("/rosout", "/parameter_events")


@dataclass
class ReplayOptions:
    bag: Path
    out: Path
    gt: Path | None = None  # default: BAG/ground_truth.json when present
    rate: float = 1.0
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


# ------------------------------------------------------------------ configuration


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
        if not sep or role not in ROLES or not topic.strip():
            raise ValueError(f"--topics expects rgb=TOPIC,thermal=TOPIC; got {item!r}")
        out[role] = _absolute(topic.strip())
    return out


def node_parameters(opts: ReplayOptions) -> tuple[dict[str, Any], dict[str, str]]:
    """(all node parameter values, bag topics by role), checked like the node checks them."""
    from_file = load_params_file(opts.params)
    unknown = sorted(set(opts.overrides) - set(SPECS))
    if unknown:
        raise ValueError(f"unknown node parameter(s) {', '.join(unknown)}")
    values = {name: spec.default for name, spec in SPECS.items()}
    values.update(from_file)
    values.update({k: _like(SPECS[k].default, v) for k, v in opts.overrides.items()})
    topics = {r: _absolute(str(values[f"{r}_topic"])) for r in ROLES}
    topics.update(opts.topics or {})
    values.update({f"{r}_topic": t for r, t in topics.items()})  # the node listens on the bag's
    reason = validate(values)
    if reason:
        raise ValueError(f"node parameters: {reason}")
    return values, topics


# ------------------------------------------------------------------ DDS mode


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
            raise RuntimeError(
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
            raise RuntimeError(
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


def _start_node(context, values: dict[str, Any], namespace: str):
    """The real node, in this process, configured and activated (or a clear error)."""
    from rclpy.parameter import Parameter

    from ivtuning_ros.ros.node import IVTuningNode, resolve_checkpoint

    resolve_checkpoint(str(values["checkpoint"]))  # FileNotFoundError naming the paths tried
    node = IVTuningNode(
        context=context,
        namespace=namespace,
        parameter_overrides=[Parameter(k, value=v) for k, v in values.items()],
    )
    if node.state_label != "active":
        node.destroy_node()
        raise RuntimeError(
            f"{NODE_NAME} did not become active (state {node.state_label}); its log above "
            "says why (checkpoint, backend)"
        )
    return node


def replay_dds(stream: BagStream, opts: ReplayOptions, values: dict[str, Any]) -> RunData:
    import rclpy
    from rclpy.context import Context

    from ivtuning_ros.replay.dds import BagPlayer, Recorder

    context = Context()
    rclpy.init(context=context, args=["ivtuning_replay"])
    spinners: list[_Spinner] = []
    node = host = recorder = None
    try:
        t0 = time.monotonic()
        if not opts.external:
            node = _start_node(context, values, opts.namespace)
            spinners.append(_Spinner(node, context))
        startup_s = time.monotonic() - t0
        host = rclpy.create_node("ivtuning_replay", context=context)
        spinners.append(_Spinner(host, context))
        topics = (
            _external_output_topics(host, opts.node_name, opts.namespace, opts.startup_timeout_s)
            if node is None
            else _own_output_topics(node)
        )
        skipped = sorted(
            t for t, ty in topics.items() if ty == IMAGE_TYPE and t.rsplit("/", 1)[-1] == "overlay"
        )
        if opts.record_overlay:
            skipped = []
        record = {t: ty for t, ty in topics.items() if t not in skipped}
        kept_types = {DETECTIONS_TYPE, LABEL_MAP_TYPE, "diagnostic_msgs/msg/DiagnosticArray"}
        mask_topics = {t for t, ty in record.items() if ty == IMAGE_TYPE and t.endswith("/mask")}
        recorder = Recorder(
            host,
            opts.out / "output_bag",
            "mcap",
            record,
            lambda t: _qos_like_publisher(host, t),
            keep=lambda t: record[t] in kept_types or t in mask_topics,
        )
        player = BagPlayer(host, stream, {r: stream.connections[r].topic for r in ROLES}, opts.rate)
        player.wait_for_subscribers(opts.startup_timeout_s)
        time.sleep(0.5)  # let the recorder's subscriptions match before the first result
        log = player.play(progress=opts.progress)
        results = [t for t, ty in record.items() if ty == DETECTIONS_TYPE]
        _drain(lambda: sum(recorder.counts[t] for t in results), float(values["sync_timeout"]))
        recorder.close()
        kept = list(recorder.kept)
        counts = dict(recorder.counts)
    finally:
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

    outputs, masks, names, diag = [], {}, (), {}
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
            fqn = f"{opts.namespace.rstrip('/')}/{opts.node_name}"
            diag = _node_status(r.raw, fqn) or diag
    for out in outputs:
        out.mask = masks.get(out.stamp_ns)
    task = "segmentation" if mask_topics else "detection"
    return RunData(
        rgb_sent=log.sent["rgb"],
        thermal_stamps=[s for s, _ in log.sent["thermal"]],
        outputs=outputs,
        task=task,
        class_names=names,
        model={
            "checkpoint": str(values["checkpoint"]),
            "backend": values["backend"],
            "node": "external" if opts.external else "in-process",
            "startup_s": round(startup_s, 2),
        },
        node_counters=diag,
        extra={
            "player": {
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
    )
    return OutputRecord(
        stamp_ns=msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec,
        receive_ns=receive_ns,
        modalities=int(msg.modalities),
        thermal_stamp_ns=msg.thermal_stamp.sec * 10**9 + msg.thermal_stamp.nanosec,
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
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, rows[:, : msg.width].copy()


def _node_status(raw: bytes, fully_qualified_name: str) -> dict[str, Any] | None:
    """The node's cumulative counters (and their reasons) from one /diagnostics message."""
    from diagnostic_msgs.msg import DiagnosticArray

    msg = deserialize_message(raw, DiagnosticArray)
    for status in msg.status:
        if status.name.endswith(fully_qualified_name):
            values = {kv.key: kv.value for kv in status.values}
            return {
                k.removeprefix("count "): int(v)
                for k, v in values.items()
                if k.startswith("count ")
            } | {k: v for k, v in values.items() if k.startswith("reason ")}
    return None


# ------------------------------------------------------------------ offline mode


def replay_offline(stream: BagStream, opts: ReplayOptions, values: dict[str, Any]) -> RunData:
    from ivtuning_ros.engine.config import EngineConfig
    from ivtuning_ros.engine.engine import load_engine
    from ivtuning_ros.replay.offline import run_offline
    from ivtuning_ros.ros.node import resolve_checkpoint

    cfg = node_config(values)
    checkpoint = resolve_checkpoint(str(values["checkpoint"]))
    engine_cfg: dict[str, Any] = {
        "backend": values["backend"],
        "precision": values["precision"],
        "warmup_runs": int(values["warmup_runs"]),
        "num_threads": int(values["num_threads"]),
        "device": values["device"],
    }
    if values["cache_dir"]:
        engine_cfg["cache_dir"] = Path(values["cache_dir"])
    t0 = time.monotonic()
    engine = load_engine(checkpoint, EngineConfig(**engine_cfg))
    startup_s = time.monotonic() - t0
    res = run_offline(stream, cfg, engine, progress=opts.progress)
    return RunData(
        rgb_sent=res.rgb_sent,
        thermal_stamps=res.thermal_stamps,
        outputs=res.outputs,
        task=engine.task,
        class_names=tuple(engine.class_names),
        model={
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": file_hash(checkpoint),
            "backend": engine.backend_name,
            "startup_s": round(startup_s, 2),
        },
        node_counters={
            **res.sync_counts,
            **res.errors,
            **{f"reason {k}": v for k, v in res.last_error.items()},
        },
        extra={"wall_s": round(res.wall_s, 3)},
    )


# ------------------------------------------------------------------ both


def _ground_truth(opts: ReplayOptions) -> GroundTruth | None:
    if opts.gt is not None:
        return GroundTruth(opts.gt)
    default = Path(opts.bag) / GT_FILENAME
    return GroundTruth(default) if default.is_file() else None


def run_replay(opts: ReplayOptions) -> dict[str, Any]:
    """Run one replay and write OUT/report.json, plots and overlays; returns the report."""
    values, topics = node_parameters(opts)
    gt = _ground_truth(opts)
    opts.out.mkdir(parents=True, exist_ok=True)
    if (opts.out / "output_bag").exists() and not opts.offline:
        raise FileExistsError(f"{opts.out / 'output_bag'} exists: choose an empty --out folder")
    types = {r: (IMAGE_TYPE,) for r in ROLES}
    with open_stream(opts.bag, topics, types) as stream:
        run = (
            replay_offline(stream, opts, values)
            if opts.offline
            else replay_dds(stream, opts, values)
        )
        bag_error, bag_note, storage, held = (
            stream.error,
            stream.note,
            stream.storage,
            stream.topics,
        )
    names = run.class_names or (
        tuple(gt.class_names[i] for i in sorted(gt.class_names)) if gt else ()
    )
    acc = account(run.rgb_sent, run.thermal_stamps, run.outputs, gt, run.task, names)
    report: dict[str, Any] = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": "offline" if opts.offline else "dds",
        "rate": opts.rate,
        "input": {
            "bag": str(opts.bag),
            "bag_sha256": hash_bag(opts.bag),
            "storage": storage,
            "topics": topics,
            "topics_in_bag": {k: {"type": t, "count": c} for k, (t, c) in held.items()},
            "ground_truth": str(gt.path) if gt else None,
            "ground_truth_sha256": file_hash(gt.path) if gt else None,
            "error": bag_error,
            "note": bag_note,
        },
        "config": {
            "params_file": str(opts.params) if opts.params else None,
            "overrides": opts.overrides,
            "node_parameters": values,
        },
        "versions": library_versions(),
        "model": {**run.model, "task": run.task, "class_names": list(names)},
        "counts": acc.counts,
        "accuracy": acc.accuracy,
        "accuracy_note": acc.accuracy_note,
        "latency": acc.latency,
        "latency_definition": (
            "result receive time - RGB publish time"
            if not opts.offline
            else "decode + inference + postprocess time per frame"
        ),
        "output_rate_hz": acc.output_rate_hz,
        "sync": acc.sync,
        "node_counters": run.node_counters,
        **run.extra,
        "frames": [
            {
                "stamp_ns": f.stamp_ns,
                "status": f.status,
                "latency_ms": None if f.status == "dropped" else round(f.latency_ms, 3),
                "has_gt": f.has_gt,
            }
            for f in acc.frames
        ],
    }
    title = f"{Path(opts.bag).name}: {report['mode']}" + (
        "" if opts.offline else f" x{opts.rate:g}"
    )
    ylabel = "processing time [ms]" if opts.offline else "end-to-end latency [ms]"
    files = [str(p) for p in plots.latency_plots(acc, opts.out, title, ylabel)]
    files += [str(p) for p in _overlays(opts, topics, acc, gt, names)]
    report["files"] = files
    (opts.out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    report["table"] = render_table(report)
    return report


def _overlays(opts, topics, acc, gt, names) -> list[Path]:
    """Overlay PNGs of a few frames (results in colour, ground truth in white) + a montage."""
    from sensor_msgs.msg import Image

    from ivtuning_ros.ros.codec import ImageDecodeError, image_to_rgb

    wanted = set(plots.pick_overlay_frames(acc.frames, opts.overlays))
    if not wanted:
        return []
    folder = opts.out / "overlays"
    folder.mkdir(exist_ok=True)
    paths, tiles = [], []
    with open_stream(opts.bag, {"rgb": topics["rgb"]}, {"rgb": (IMAGE_TYPE,)}) as stream:
        for _, _, raw in stream.messages():
            msg = deserialize_message(raw, Image)
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            if stamp not in wanted:
                continue
            try:
                rgb = image_to_rgb(msg)
            except ImageDecodeError:
                continue
            out = acc.outputs_by_stamp[stamp]
            truth = gt.get(stamp) if gt is not None else None
            banner = {0: "", 1: "RGB ONLY", 2: "THERMAL ONLY"}[out.modalities]
            image = plots.overlay_frame(
                rgb, names, out.detections, out.mask, truth.boxes if truth else None, banner
            )
            paths.append(folder / f"frame_{len(paths):02d}_{stamp}.png")
            plots.save_rgb_png(paths[-1], image)
            tiles.append(image)
    if tiles:
        paths.append(opts.out / "overlay_montage.png")
        plots.save_rgb_png(paths[-1], plots.montage(tiles, columns=3))
    return paths
