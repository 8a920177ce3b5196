"""Write a synthetic night/fog RGB-T recording as a real rosbag2, with its ground truth.

Two free-running cameras are modelled the way real drivers behave: each captures at
its own rate and phase; its driver stamps header.stamp with a constant offset from the
true capture time plus stamping jitter; the message reaches the recorder after a
transport delay with its own jitter, and that receive time is the bag's timestamp
(exactly what `ros2 bag record` stores). The RGB camera is a 10 Hz bgr8 camera, the
thermal one an 8.7 Hz mono16 (radiometric Y16 counts) core, so every RGB frame must be paired
with a thermal frame taken up to ~60 ms apart, as on a robot. Each image shows the
scene at its own capture time; ground truth is written for every RGB frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.serialization import serialize_message
from tqdm import tqdm

from ivtuning_ros.data.scene import SEG_CLASSES
from ivtuning_ros.data.synthetic import DEFAULT_SIZE, SceneSequence
from ivtuning_ros.replay.bagio import COMPRESSED_TYPE, IMAGE_TYPE, open_writer, typestore
from ivtuning_ros.replay.ground_truth import GT_FILENAME, GroundTruthWriter
from ivtuning_ros.ros.codec import array_to_compressed, array_to_image
from ivtuning_ros.ros.params import SPECS
from ivtuning_ros.timestamps import ns_to_stamp
from ivtuning_ros.types import CAMERAS

# The node's default input topics (resolved in the root namespace): the bag plays into
# a node started with no remapping.
DEFAULT_TOPICS = {r: "/" + str(SPECS[f"{r}_topic"].default).lstrip("/") for r in CAMERAS}

EPOCH_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z: recordings start here


@dataclass(frozen=True)
class StreamTiming:
    """How one camera's frames are timed (seconds)."""

    rate_hz: float
    phase_s: float  # first capture after the recording start
    stamp_offset_s: float  # header.stamp - true capture time (driver's constant error)
    stamp_jitter_s: float  # standard deviation of the stamping noise
    transport_s: float  # mean delay from capture to the recorder
    transport_jitter_s: float  # standard deviation of that delay


# A global-shutter colour camera stamped close to exposure, and a thermal core whose
# driver stamps after readout over USB (later, noisier, slower to arrive).
RGB_TIMING = StreamTiming(10.0, 0.0, 0.002, 0.001, 0.018, 0.003)
THERMAL_TIMING = StreamTiming(8.7, 0.037, 0.028, 0.004, 0.041, 0.006)


@dataclass(frozen=True)
class Capture:
    capture_s: float  # true capture time since the recording start
    stamp_ns: int  # header.stamp
    receive_ns: int  # bag timestamp


def schedule(timing: StreamTiming, seconds: float, rng: np.random.Generator) -> list[Capture]:
    """Capture, stamp and receive times of one stream over `seconds`."""
    n = int(np.floor((seconds - timing.phase_s) * timing.rate_hz)) + 1
    captures = timing.phase_s + np.arange(max(n, 0)) / timing.rate_hz
    stamp = captures + timing.stamp_offset_s + rng.normal(0, timing.stamp_jitter_s, len(captures))
    delay = np.abs(rng.normal(timing.transport_s, timing.transport_jitter_s, len(captures)))
    receive = np.maximum(captures + delay, stamp + 1e-4)  # a driver cannot stamp after sending
    return [
        Capture(float(c), EPOCH_NS + round(s * 1e9), EPOCH_NS + round(r * 1e9))
        for c, s, r in zip(captures, stamp, receive, strict=True)
    ]


def stamped_header(stamp_ns: int, frame_id: str):
    from std_msgs.msg import Header

    return Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id)


@dataclass(frozen=True)
class BagSummary:
    path: Path
    ground_truth: Path
    storage: str
    rgb_frames: int
    thermal_frames: int
    seconds: float
    topics: dict[str, str]


def camera_message(
    role: str, pixels: np.ndarray, encoding: str, stamp_ns: int, compressed: bool
) -> Any:
    """A frame as its camera driver publishes it: sensor_msgs/Image, or with
    `compressed` what image_transport sends (RGB as JPEG, thermal as lossless PNG)."""
    header = stamped_header(stamp_ns, f"{role}_camera")
    if compressed:
        return array_to_compressed(pixels, encoding, "jpeg" if role == "rgb" else "png", header)
    return array_to_image(np.ascontiguousarray(pixels), encoding, header)


def rgb_pixels(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """An RGB-order image in the channel order `encoding` (bgr8 or rgb8) names."""
    return rgb[:, :, ::-1] if encoding == "bgr8" else rgb


def _ground_truth_info(
    condition: str,
    seed: int,
    out: Path,
    rgb_topic: str,
    thermal_topic: str,
    rgb_encoding: str,
    compressed: bool,
    thermal_gap: tuple[float, float] | None,
) -> dict[str, Any]:
    """What the ground-truth sidecar says about the recording."""
    return {
        "description": f"synthetic {condition} RGB-T recording, seed {seed}",
        "bag": out.name,
        "rgb_topic": rgb_topic,
        "thermal_topic": thermal_topic,
        "stamp": "stamp_ns is header.stamp of the RGB message",
        "category_ids": "model class ids (Detection.class_id)",
        "mask_classes": list(SEG_CLASSES),
        "rgb_encoding": rgb_encoding + (" as JPEG" if compressed else ""),
        "thermal_encoding": "mono16" + (" as PNG" if compressed else "") + ", TLinear "
        "counts (kelvin x 100): thermal_norm y16_percentile or auto",
        "rgb_timing": asdict(RGB_TIMING),
        "thermal_timing": asdict(THERMAL_TIMING),
        "thermal_gap_s": list(thermal_gap) if thermal_gap else None,
    }


def _silence(captures: list[Capture], gap: tuple[float, float]) -> list[Capture]:
    """The captures outside [start, end) seconds: a camera silent for that span."""
    lo, hi = gap
    if not 0 <= lo < hi:
        raise ValueError(f"thermal gap must be START:END with 0 <= START < END, got {lo}:{hi}")
    return [c for c in captures if not lo <= c.capture_s < hi]


def make_bag(
    out: str | Path,
    *,
    storage: str = "mcap",
    condition: str = "light_fog",
    seconds: float = 20.0,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    rgb_topic: str = DEFAULT_TOPICS["rgb"],
    thermal_topic: str = DEFAULT_TOPICS["thermal"],
    rgb_encoding: str = "bgr8",
    thermal_gap: tuple[float, float] | None = None,
    compressed: bool = False,
    progress: bool = True,
) -> BagSummary:
    """Render `seconds` of the synthetic scene into a rosbag2 at `out` (+ ground truth).

    size is (width, height). thermal_gap (start, end) in seconds silences the thermal
    camera for that span (a cable or driver dropout), so the node must run degraded.
    compressed: record what image_transport's compressed transport publishes instead,
    on `<topic>/compressed`: RGB as JPEG (quality 95), thermal as 16-bit PNG.
    Thermal is mono16 TLinear counts (kelvin x 100), as radiometric cores deliver it; the
    node's thermal_norm must suit that (y16_percentile or auto), as the ground truth says.
    """
    if seconds <= 0:
        raise ValueError(f"--seconds must be positive, got {seconds}")
    if rgb_encoding not in ("bgr8", "rgb8"):
        raise ValueError(f"RGB encoding must be bgr8 or rgb8, got {rgb_encoding!r}")
    scene = SceneSequence(condition, seed, size, thermal_bits=16)
    rng = np.random.default_rng(seed)
    rgb_caps = schedule(RGB_TIMING, seconds, rng)
    th_caps = schedule(THERMAL_TIMING, seconds, rng)
    if thermal_gap is not None:
        th_caps = _silence(th_caps, thermal_gap)
    events = [(c.receive_ns, "rgb", c) for c in rgb_caps]
    events = sorted(events + [(c.receive_ns, "thermal", c) for c in th_caps], key=lambda e: e[0])
    out = Path(out)
    if compressed:
        rgb_topic, thermal_topic = f"{rgb_topic}/compressed", f"{thermal_topic}/compressed"
    store = typestore()
    writer = open_writer(out, storage)
    info = _ground_truth_info(condition, seed, out, rgb_topic, thermal_topic, rgb_encoding,
                              compressed, thermal_gap)  # fmt: skip
    gt = GroundTruthWriter(out, scene.class_names, info)
    try:
        msgtype = COMPRESSED_TYPE if compressed else IMAGE_TYPE
        conns = {
            "rgb": writer.add_connection(rgb_topic, msgtype, typestore=store),
            "thermal": writer.add_connection(thermal_topic, msgtype, typestore=store),
        }
        for receive_ns, role, cap in tqdm(
            events, desc=f"make-bag {out.name}", unit="msg", disable=not progress
        ):
            sample = scene.frame(cap.capture_s)
            if role == "rgb":
                pixels, encoding = rgb_pixels(sample.rgb, rgb_encoding), rgb_encoding
            else:  # TLinear counts, as radiometric cores send them
                pixels = np.clip(np.rint(sample.thermal), 0, 65535).astype(np.uint16)
                encoding = "mono16"
            msg = camera_message(role, pixels, encoding, cap.stamp_ns, compressed)
            if role == "rgb":
                h, w = sample.rgb.shape[:2]
                name = f"{out.name}_{len(gt.images):06d}"
                gt.add(name, cap.stamp_ns, w, h, sample.boxes, sample.labels, sample.mask,
                       track_ids=sample.instance_ids)  # fmt: skip
            writer.write(conns[role], receive_ns, serialize_message(msg))
    finally:
        writer.close()
    gt_path = gt.write()
    assert gt_path.name == GT_FILENAME
    return BagSummary(
        path=out,
        ground_truth=gt_path,
        storage=storage,
        rgb_frames=len(rgb_caps),
        thermal_frames=len(th_caps),
        seconds=seconds,
        topics={"rgb": rgb_topic, "thermal": thermal_topic},
    )
