"""Offline replay: the node's pipeline without DDS, as fast as the model runs.

bag -> rclpy deserialisation -> the node's codec checks -> the node's PairSynchronizer
(its clock driven by the bag's receive times, so pairing, timeouts and degraded frames
happen as they would live) -> the node's own per-pair steps (ros/pipeline.py:
load_node_models, pair_inputs, NodeModels.for_pair) -> Predictor.
Every pair is processed (nothing is superseded), so accuracy is the model's own and
"latency" is the processing time per frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.serialization import deserialize_message
from tqdm import tqdm

from ivtuning_ros.replay.bagio import BagStream
from ivtuning_ros.replay.dds import message_class
from ivtuning_ros.replay.matching import OutputRecord
from ivtuning_ros.replay.options import ReplayOptions, RunData
from ivtuning_ros.replay.report import file_hash
from ivtuning_ros.ros.codec import (
    RGB_ENCODINGS,
    THERMAL_ENCODINGS,
    ImageDecodeError,
    check_message,
)
from ivtuning_ros.ros.outputs import MODALITY
from ivtuning_ros.ros.params import NodeConfig, node_config
from ivtuning_ros.ros.pipeline import (
    FrameState,
    NodeModels,
    frame_error_key,
    load_node_models,
    process_pair,
    resolve_checkpoint,
)
from ivtuning_ros.ros.sync import PairSynchronizer, SyncedPair
from ivtuning_ros.timestamps import stamp_ns


@dataclass
class OfflineResult:
    rgb_sent: list[tuple[int, int]] = field(default_factory=list)  # (stamp, start ns)
    thermal_stamps: list[int] = field(default_factory=list)
    outputs: list[OutputRecord] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)
    sync_counts: dict[str, int] = field(default_factory=dict)
    fallback_results: int = 0  # made by the fallback model (fallback_checkpoint)
    wall_s: float = 0.0


def run_offline(
    stream: BagStream,
    cfg: NodeConfig,
    models: NodeModels,
    progress: bool = True,
    on_result: Callable[[OutputRecord, np.ndarray | None], None] | None = None,
) -> OfflineResult:
    """Feed every message of `stream` through sync + predictor; collect OutputRecords."""
    msg_types = {r: message_class(c.msgtype) for r, c in stream.connections.items()}
    res = OfflineResult()
    clock = {"now": 0.0}
    started: dict[int, int] = {}  # RGB stamp -> wall time its message was read
    state = FrameState()

    def fail(key: str, why: str) -> None:
        res.errors[key] = res.errors.get(key, 0) + 1
        res.last_error[key] = why

    def on_pair(pair: SyncedPair) -> None:
        t_begin = time.time_ns()
        try:
            frame = process_pair(pair, cfg, models, state, fail)
        except (ImageDecodeError, ValueError) as err:
            fail(frame_error_key(err), str(err))
            return
        for key, why in frame.frame_problems:
            fail(key, why)
        res.fallback_results += frame.fallback
        ref = pair.reference
        pred = frame.prediction
        took = time.time_ns() - t_begin
        # Offline "latency" is the processing time: dated from the RGB frame's log entry.
        record = OutputRecord(
            stamp_ns=ref.stamp_ns,
            receive_ns=started.get(ref.stamp_ns, t_begin) + took,
            modalities=MODALITY[frame.modality],
            thermal_stamp_ns=pair.thermal.stamp_ns if pair.thermal is not None else 0,
            inference_ms=pred.timings_ms.get("total", float("nan")),
            detections=pred.detections,
            mask=pred.mask,
        )
        res.outputs.append(record)
        if on_result is not None:
            on_result(record, frame.rgb)

    sync = PairSynchronizer(
        cfg.sync, on_pair, clock=lambda: clock["now"], standalone=models.standalone_cameras
    )
    total = sum(stream.count(r) for r in stream.connections) or None
    t0 = time.monotonic()
    for role, t_ns, raw in tqdm(
        stream.messages(), total=total, desc="replay offline", unit="msg", disable=not progress
    ):
        clock["now"] = t_ns / 1e9
        msg = deserialize_message(raw, msg_types[role])
        accepted = RGB_ENCODINGS if role == "rgb" else THERMAL_ENCODINGS
        stamp = stamp_ns(msg.header.stamp)
        if role == "rgb":
            res.rgb_sent.append((stamp, time.time_ns()))
            started.setdefault(stamp, res.rgb_sent[-1][1])
        else:
            res.thermal_stamps.append(stamp)
        try:
            check_message(msg, accepted, role)
        except ImageDecodeError as err:
            fail(f"{role}_bad_input", str(err))
            continue
        sync.poll()
        sync.add(role, stamp, msg)
    clock["now"] += cfg.sync.timeout + 1.0  # the bag ended: let lone frames time out
    sync.poll()
    res.sync_counts = dict(sync.counts)
    res.wall_s = time.monotonic() - t0
    return res


def replay_offline(stream: BagStream, opts: ReplayOptions, values: dict[str, Any]) -> RunData:
    """Load the engine as the node would, run the bag through it, collect a RunData."""
    cfg = node_config(values)
    t0 = time.monotonic()
    models = load_node_models(cfg)
    startup_s = time.monotonic() - t0
    try:
        res = run_offline(stream, cfg, models, progress=opts.progress)
    finally:
        models.close()
    engine = models.engine
    checkpoint = resolve_checkpoint(str(values["checkpoint"]))
    fallback = resolve_checkpoint(cfg.fallback_checkpoint) if cfg.fallback_checkpoint else None
    return RunData(
        rgb_sent=res.rgb_sent,
        thermal_stamps=res.thermal_stamps,
        outputs=res.outputs,
        task=engine.task,
        class_names=tuple(engine.class_names),
        model={
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": file_hash(checkpoint),
            **(
                {"fallback_checkpoint": str(fallback), "fallback_sha256": file_hash(fallback)}
                if fallback
                else {}
            ),
            "backend": engine.backend_name,
            "startup_s": round(startup_s, 2),
        },
        node_counters={
            **res.sync_counts,
            **res.errors,
            **({"fallback_results": res.fallback_results} if res.fallback_results else {}),
            **{f"reason {k}": v for k, v in res.last_error.items()},
        },
        extra={"wall_s": round(res.wall_s, 3)},
    )
