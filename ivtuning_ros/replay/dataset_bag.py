"""Write a registered-pair data set (LLVIP, M3FD, FLIR, MSRS, ...) as a rosbag2 to replay.

Pair i is captured at i / rate seconds: its RGB image is published then (bgr8 or rgb8,
or JPEG on `<topic>/compressed`), and the thermal camera, at its own rate, publishes
the thermal image of the pair being shown at its capture time, stamped `stamp_offset`
later (a driver's constant error; the node's thermal_offset undoes it). 8-bit thermal
data goes out as mono8, 16-bit as mono16 (PNG when compressed). The ground-truth
sidecar has one image per RGB frame with its stamp and the data set's own class names,
which replay matches to the model's by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rclpy.serialization import serialize_message
from tqdm import tqdm

from ivtuning_ros.replay.bagio import COMPRESSED_TYPE, IMAGE_TYPE, open_writer, typestore
from ivtuning_ros.replay.ground_truth import GroundTruthWriter
from ivtuning_ros.replay.synthetic_bag import (
    DEFAULT_TOPICS,
    EPOCH_NS,
    BagSummary,
    camera_message,
    rgb_pixels,
)
from ivtuning_ros.types import RGBTSample

THERMAL_ENCODINGS = ("auto", "mono8", "mono16")


@dataclass(frozen=True)
class DatasetBagSpec:
    rate_hz: float = 10.0
    thermal_rate_hz: float | None = None  # None: the RGB rate
    stamp_offset_s: float = 0.0  # thermal header.stamp - its capture time
    rgb_encoding: str = "bgr8"
    thermal_encoding: str = "auto"  # mono8 for 8-bit data, mono16 for more
    compressed: bool = False
    storage: str = "mcap"
    rgb_topic: str = DEFAULT_TOPICS["rgb"]
    thermal_topic: str = DEFAULT_TOPICS["thermal"]

    def __post_init__(self) -> None:
        if self.rate_hz <= 0 or (self.thermal_rate_hz is not None and self.thermal_rate_hz <= 0):
            raise ValueError("rates must be positive")
        if self.rgb_encoding not in ("bgr8", "rgb8"):
            raise ValueError(f"RGB encoding must be bgr8 or rgb8, got {self.rgb_encoding!r}")
        if self.thermal_encoding not in THERMAL_ENCODINGS:
            raise ValueError(f"thermal encoding must be one of {', '.join(THERMAL_ENCODINGS)}")


def _thermal_pixels(thermal: np.ndarray, encoding: str, name: str) -> tuple[np.ndarray, str]:
    if encoding == "auto":
        encoding = "mono8" if thermal.max(initial=0) <= 255 else "mono16"
    top = 255 if encoding == "mono8" else 65535
    if thermal.min(initial=0) < 0 or thermal.max(initial=0) > top:
        raise ValueError(f"pair {name!r}: thermal values do not fit {encoding}")
    return np.rint(thermal).astype(np.uint8 if encoding == "mono8" else np.uint16), encoding


def dataset_bag(
    samples: Sequence[RGBTSample],
    class_names: Sequence[str],
    out: str | Path,
    spec: DatasetBagSpec = DatasetBagSpec(),
    description: str = "",
    progress: bool = True,
) -> BagSummary:
    """Write `samples` (in order) into a new rosbag2 at `out` with ground truth."""
    if len(samples) == 0:
        raise ValueError("the data set holds no pairs to write")
    out = Path(out)
    rgb_topic, thermal_topic = spec.rgb_topic, spec.thermal_topic
    if spec.compressed:
        rgb_topic, thermal_topic = f"{rgb_topic}/compressed", f"{thermal_topic}/compressed"
    n = len(samples)
    seconds = n / spec.rate_hz
    th_rate = spec.thermal_rate_hz or spec.rate_hz
    rgb_times = np.arange(n) / spec.rate_hz
    th_times = np.arange(int(np.ceil(seconds * th_rate))) / th_rate
    offset_ns = round(spec.stamp_offset_s * 1e9)
    # (receive time, camera, pair, stamp): the recorder receives a message 5 ms after
    # capture, never before its stamp
    events = []
    for role, times in (("rgb", rgb_times), ("thermal", th_times)):
        for i, t in enumerate(times):
            capture = EPOCH_NS + round(t * 1e9)
            pair = i if role == "rgb" else min(int(t * spec.rate_hz), n - 1)
            stamp = capture + (offset_ns if role == "thermal" else 0)
            events.append((max(capture, stamp) + 5_000_000, role, pair, stamp))
    events.sort()
    store = typestore()
    writer = open_writer(out, spec.storage)
    gt = GroundTruthWriter(out, class_names, {
        "description": description or f"data set written as a bag by make-bag, {n} pairs",
        "bag": out.name, "rgb_topic": rgb_topic, "thermal_topic": thermal_topic,
        "stamp": "stamp_ns is header.stamp of the RGB message",
        "category_ids": "the data set's classes (replay matches them by name)",
        "rate_hz": spec.rate_hz, "thermal_rate_hz": th_rate,
        "thermal_stamp_offset_s": spec.stamp_offset_s,
    })  # fmt: skip
    msgtype = COMPRESSED_TYPE if spec.compressed else IMAGE_TYPE
    try:
        conns = {
            "rgb": writer.add_connection(rgb_topic, msgtype, typestore=store),
            "thermal": writer.add_connection(thermal_topic, msgtype, typestore=store),
        }
        cached: tuple[int, RGBTSample] | None = None
        for receive, role, index, stamp in tqdm(
            events, desc=f"make-bag {out.name}", unit="msg", disable=not progress
        ):
            if cached is None or cached[0] != index:
                cached = (index, samples[index])
            sample = cached[1]
            if role == "rgb":
                pixels, encoding = rgb_pixels(sample.rgb, spec.rgb_encoding), spec.rgb_encoding
                h, w = sample.rgb.shape[:2]
                gt.add(sample.name or f"{index:06d}", stamp, w, h, sample.boxes, sample.labels)
            else:
                pixels, encoding = _thermal_pixels(
                    sample.thermal, spec.thermal_encoding, sample.name
                )
            msg = camera_message(role, pixels, encoding, stamp, spec.compressed)
            writer.write(conns[role], receive, serialize_message(msg))
    finally:
        writer.close()
    return BagSummary(
        path=out,
        ground_truth=gt.write(),
        storage=spec.storage,
        rgb_frames=len(rgb_times),
        thermal_frames=len(th_times),
        seconds=seconds,
        topics={"rgb": rgb_topic, "thermal": thermal_topic},
    )
