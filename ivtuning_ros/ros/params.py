"""Every node parameter in one table: default, description, range or choices, and when
it takes effect.

`live` parameters (thresholds, sync tolerances, overlay) apply at once when set at run
time; the others (model, topics, QoS) are read on the next `configure` transition, which
the descriptions say. Ranges are enforced by rclpy through the descriptors; choices and
cross-field rules by `validate`, whose reason is returned to `ros2 param set`.
config/ivtuning.yaml documents the same table (a test keeps them in step).
"""

from __future__ import annotations

import array
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from ivtuning_ros.engine.config import BACKENDS
from ivtuning_ros.geometry import ThermalGeometry
from ivtuning_ros.postprocess import DEFAULT_SCORE_THRESHOLD
from ivtuning_ros.preprocess import THERMAL_PRESETS, ThermalNorm
from ivtuning_ros.settings import from_mapping
from ivtuning_ros.tracking import TrackingConfig

from .sync import ON_TIMEOUT, SYNC_POLICIES, SyncConfig


@dataclass(frozen=True)
class Spec:
    default: Any
    description: str
    live: bool = False
    range: tuple[float, float] | None = None  # inclusive; int or float by the default's type
    choices: tuple[str, ...] | None = None


# for checkpoints that record no validated threshold
FALLBACK_SCORE_THRESHOLD = DEFAULT_SCORE_THRESHOLD
THERMAL_NORMS = ("checkpoint", "auto", *THERMAL_PRESETS, "fixed", "percentile")
TRANSPORTS = ("raw", "compressed")


def descriptor(name: str, spec: Spec):
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    text = spec.description + ("" if spec.live else " (applied at configure)")
    if spec.choices:
        text += f" One of: {', '.join(spec.choices)}."
    d = ParameterDescriptor(name=name, description=text)
    if spec.range is not None:
        lo, hi = spec.range
        if isinstance(spec.default, bool) or not isinstance(spec.default, (int, float)):
            raise TypeError(f"{name}: a range needs a numeric default")
        if isinstance(spec.default, int):
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi, step=0.0)]
    return d


def default_values() -> dict[str, Any]:
    """Every parameter at its default: the node as started with no params file."""
    return {name: spec.default for name, spec in SPECS.items()}


def validate(values: dict[str, Any], complete: bool = True) -> str | None:
    """Return why `values` are invalid, or None.

    complete: `values` holds every parameter (new ones merged in), so cross-field rules
    are checked too; False while parameters are still being declared.
    """
    for name, value in values.items():
        spec = SPECS.get(name)
        if spec is not None and spec.choices and value not in spec.choices:
            return f"{name}={value!r}: must be one of {', '.join(spec.choices)}"
    if not complete:
        return None
    try:
        node_config(values)
    except ValueError as err:
        return str(err)
    return None


def param(
    default: Any,
    description: str,
    live: bool = False,
    range: tuple[float, float] | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A node parameter field: its default and documentation beside it (SPECS reads them)."""
    spec = Spec(default, description, live, range, choices)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


@dataclass(frozen=True)
class NodeConfig:
    """Every node parameter, typed, with its default and documentation: the parameter
    table (`SPECS` is read from these fields). Built by `node_config` through the one
    settings loader; what follows from several parameters (the synchroniser's settings,
    the thermal geometry, the thermal normalisation) is resolved once per change.
    `thermal_norm` then holds the normalisation itself for a preset, fixed or percentile
    (the parameter's word stays in `values`), or "checkpoint" / "auto", decided per frame.
    """

    # Lifecycle and model
    auto_activate: bool = param(True, "Configure and activate at start-up (no lifecycle manager).")
    checkpoint: str = param(
        "models/default.safetensors",
        "Model checkpoint (.safetensors); a relative path is looked up in the working "
        "directory, then in the package's share folder.",
    )
    fallback_checkpoint: str = param(
        "",
        "A second checkpoint (same task and classes) that runs the lone frames of a camera "
        "the main model cannot run on alone, e.g. an rgb_only model that keeps detecting "
        "when the thermal camera of a thermal-primary model fails (see on_timeout). "
        "Empty: none.",
    )
    backend: str = param(
        "auto",
        "Inference backend; auto = TensorRT with a GPU, else ONNX Runtime, else torch; "
        "openvino for bf16 on CPUs that have it, or int8 on those that do not.",
        choices=BACKENDS,
    )
    precision: str = param(
        "fp32",
        "Engine precision: fp32; int8 (OpenVINO or ONNX Runtime on CPUs, TensorRT on "
        "NVIDIA; needs int8_calibration_dir); fp16 (TensorRT, torch on CUDA); bf16 "
        "(OpenVINO on CPUs with bf16 arithmetic: the fastest CPU path where they have it).",
        choices=("fp32", "fp16", "bf16", "int8"),
    )
    device: str = param("auto", "Torch device for the torch/TensorRT backends (auto, cpu, cuda:0).")
    cache_dir: str = param("", "Engine cache folder; empty = the engine's default (~/.cache).")
    int8_calibration_dir: str = param(
        "",
        "Registered RGB-T pairs (visible/ + infrared/, vi/ + ir/ or rgb/ + thermal/) that "
        "calibrate an int8 engine; part of its cache key.",
    )
    warmup_runs: int = param(
        3, "Inference passes run at configure before the node is ready.", range=(0, 100)
    )
    num_threads: int = param(0, "CPU threads for inference; 0 = backend default.", range=(0, 256))
    # Topics and QoS (read at configure)
    rgb_topic: str = param("rgb/image_raw", "RGB image topic (sensor_msgs/Image).")
    thermal_topic: str = param("thermal/image_raw", "Thermal image topic (sensor_msgs/Image).")
    rgb_transport: str = param(
        "raw",
        "raw = sensor_msgs/Image on rgb_topic; compressed = image_transport's JPEG/PNG "
        "sensor_msgs/CompressedImage on rgb_topic/compressed.",
        choices=TRANSPORTS,
    )
    thermal_transport: str = param(
        "raw",
        "raw or compressed (PNG keeps 16-bit thermal; JPEG is 8-bit), as rgb_transport.",
        choices=TRANSPORTS,
    )
    use_camera_info: bool = param(
        False, "Subscribe to rgb_info_topic and report whether it matches the RGB size."
    )
    rgb_info_topic: str = param("rgb/camera_info", "RGB CameraInfo topic (with use_camera_info).")
    qos_reliability: str = param(
        "best_effort",
        "Input QoS reliability; best_effort (sensor data) also accepts reliable publishers.",
        choices=("best_effort", "reliable"),
    )
    qos_depth: int = param(1, "Input QoS history depth (keep last N).", range=(1, 100))
    # Synchronisation (live)
    sync_policy: str = param(
        "approximate",
        "How frames pair: approximate = each frame pairs at most once (message_filters' "
        "ApproximateTime), so a faster camera's surplus frames go unpaired; reference = "
        "every RGB frame takes the thermal frame closest in stamp within sync_slop, "
        "reusing thermal frames, so results come at the RGB rate (give it a sync_slop of at "
        "least half the thermal frame interval).",
        True,
        choices=SYNC_POLICIES,
    )
    sync_queue_size: int = param(
        5, "Frames kept per stream while waiting for a partner.", True, (1, 100)
    )
    sync_slop: float = param(
        0.05,
        "Largest stamp difference (s) between a paired RGB and thermal frame.",
        True,
        (0.0, 2.0),
    )
    rgb_stamp_offset: float = param(
        0.0, "Seconds added to RGB stamps before pairing (driver latency).", True, (-5.0, 5.0)
    )
    thermal_stamp_offset: float = param(
        0.0, "Seconds added to thermal stamps before pairing.", True, (-5.0, 5.0)
    )
    sync_timeout: float = param(
        0.5,
        "Seconds a lone frame waits for its partner before on_timeout applies.",
        True,
        (0.01, 10.0),
    )
    on_timeout: str = param(
        "degraded_auto",
        "Lone frame whose partner camera is silent: run single-modality with the missing "
        "stream neutral-filled (flagged in the outputs) if the model works without that "
        "camera, else drop and count it. degraded_auto = only a camera the model can do with "
        "alone (a prompted model's backbone camera, as the shipped model needs its thermal "
        "camera: models/README.md), degraded = either camera, degraded_thermal_only / "
        "degraded_rgb_only = that camera only, drop = none.",
        True,
        choices=ON_TIMEOUT,
    )
    zero_stamp: str = param(
        "drop",
        "Frames stamped 0: drop (counted) or stamp with the arrival time.",
        True,
        choices=("drop", "arrival_time"),
    )
    # Thermal conversion (live)
    thermal_norm: str = param(
        "auto",
        "Thermal to [0, 1]: auto = the model's training normalisation when it fits the "
        "encoding, else by encoding (mono8 agc8, mono16/16UC1 y16_percentile, 32FC1 "
        "celsius); checkpoint = always the training normalisation; a preset; fixed = "
        "[thermal_low, thermal_high] in source units "
        "(counts or deg C); percentile = per-frame [thermal_low, thermal_high] percentiles.",
        True,
        choices=THERMAL_NORMS,
    )
    thermal_low: float = param(0.0, "Low end for thermal_norm fixed/percentile.", True, (-1e6, 1e6))
    thermal_high: float = param(
        255.0, "High end for thermal_norm fixed/percentile.", True, (-1e6, 1e6)
    )
    thermal_crop: list[int] = param(
        [0, 0, 0, 0],
        "Crop [x, y, width, height] of the thermal image (thermal pixels) before mapping "
        "to the RGB grid; all zeros = no crop.",
        True,
    )
    thermal_affine: list[float] = param(
        [0.0] * 6,
        "2x3 affine (row-major) from (cropped) thermal pixels to RGB pixels; all zeros = "
        "plain resize to the RGB size.",
        True,
    )
    thermal_homography: list[float] = param(
        [0.0] * 9,
        "3x3 homography (row-major) from (cropped) thermal pixels to RGB pixels, e.g. from "
        "`ivtuning calibrate`; all zeros = none (thermal_affine or a plain resize).",
        True,
    )
    # Results (live)
    score_threshold: float = param(
        -1.0,
        "Detections below this score are not published; negative = the checkpoint's own "
        f"threshold (the best F1 on its validation split), or {FALLBACK_SCORE_THRESHOLD} if it "
        "has none.",
        True,
        (-1.0, 1.0),
    )
    nms_iou: float = param(
        0.5, "IoU above which overlapping same-class boxes are suppressed.", True, (0.0, 1.0)
    )
    max_detections: int = param(100, "Most detections published per frame.", True, (1, 1000))
    tracking: bool = param(
        True,
        "Give detections persistent identities (ByteTrack; Detection.track_id and "
        "vision_msgs Detection2D.id), kept through single-camera stretches.",
    )
    track_buffer: float = param(
        1.0,
        "Seconds a lost track is kept and can be found again under its identity.",
        range=(0.0, 60.0),
    )
    track_match_iou: float = param(
        0.2,
        "Least IoU between a track's predicted box and a detection for them to match.",
        range=(0.01, 0.99),
    )
    overlay_thermal_pip: bool = param(
        True, "Draw the thermal image picture-in-picture on the overlay.", True
    )
    overlay_mask_alpha: float = param(
        0.5, "Opacity of the class mask on the overlay.", True, (0.0, 1.0)
    )
    # Diagnostics
    diagnostics_period: float = param(
        1.0, "Seconds between /diagnostics messages.", range=(0.1, 60.0)
    )
    stale_after: float = param(
        2.0,
        "Seconds without input after which diagnostics report a stream as silent.",
        True,
        (0.1, 60.0),
    )
    result_timeout: float = param(
        5.0,
        "Seconds without a published result, while input arrives, after which diagnostics "
        "report ERROR naming the commonest recent drop reason (e.g. inference_error).",
        True,
        (0.5, 600.0),
    )
    transport_loss_warn: float = param(
        0.05,
        "Share of a camera's frames lost in transport (DDS lost-sample events) over the "
        "diagnostics window above which diagnostics report WARN.",
        True,
        (0.0, 1.0),
    )
    sync: SyncConfig = field(init=False, repr=False, compare=False)
    geometry: ThermalGeometry = field(init=False, repr=False, compare=False)
    thermal_norm_param: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        device = self.device
        if not (device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", device)):
            raise ValueError(f"device={device!r}: must be auto, cpu, cuda or cuda:N")
        sync = SyncConfig(
            queue_size=self.sync_queue_size,
            slop=self.sync_slop,
            timeout=self.sync_timeout,
            on_timeout=self.on_timeout,
            rgb_offset=self.rgb_stamp_offset,
            thermal_offset=self.thermal_stamp_offset,
            zero_stamp=self.zero_stamp,
            policy=self.sync_policy,
        )
        geometry = ThermalGeometry.from_params(
            list(self.thermal_crop), list(self.thermal_affine), list(self.thermal_homography)
        )
        mode = self.thermal_norm
        if mode in ("checkpoint", "auto"):
            norm: ThermalNorm | str = mode
        elif mode in THERMAL_PRESETS:
            norm = THERMAL_PRESETS[mode]
        else:
            try:
                norm = ThermalNorm(mode, self.thermal_low, self.thermal_high)
            except ValueError as err:
                raise ValueError(f"thermal_norm {mode}: {err}") from None
        for name, value in (
            ("sync", sync),
            ("geometry", geometry),
            ("thermal_norm", norm),
            ("thermal_norm_param", mode),
        ):
            object.__setattr__(self, name, value)

    @property
    def values(self) -> dict[str, Any]:
        """The parameter values this config was built from, by name."""
        out = {name: getattr(self, name) for name in SPECS}
        out["thermal_norm"] = self.thermal_norm_param
        return out

    @property
    def tracking_config(self) -> TrackingConfig:
        return TrackingConfig(self.tracking, self.track_buffer, self.track_match_iou)

    def score_threshold_for(self, checkpoint_threshold: float | None) -> float:
        """The score threshold in force: the parameter, or when it is negative the
        checkpoint's validated one (FALLBACK_SCORE_THRESHOLD for a checkpoint without)."""
        if self.score_threshold >= 0:
            return self.score_threshold
        if checkpoint_threshold is None:
            return FALLBACK_SCORE_THRESHOLD
        return float(checkpoint_threshold)

    def norm_for(self, encoding: str, checkpoint_norm: ThermalNorm) -> ThermalNorm:
        """The normalisation for a thermal frame of this encoding."""
        if isinstance(self.thermal_norm, ThermalNorm):
            return self.thermal_norm
        if self.thermal_norm == "checkpoint":
            return checkpoint_norm
        # auto: the training normalisation when it fits this encoding's units (a
        # per-frame percentile fits any; a fixed range fits 8-bit data when it lies in
        # 0..255), else the encoding's own preset. A 16-bit camera feeding a model trained
        # on 8-bit AGC images would otherwise saturate.
        eight_bit = encoding in ("mono8", "8UC1")
        if checkpoint_norm.mode == "percentile" or (
            eight_bit and checkpoint_norm.low >= 0.0 and checkpoint_norm.high <= 255.0
        ):
            return checkpoint_norm
        if eight_bit:
            return THERMAL_PRESETS["agc8"]
        if encoding == "32FC1":
            return THERMAL_PRESETS["celsius"]
        return THERMAL_PRESETS["y16_percentile"]


SPECS: dict[str, Spec] = {
    f.name: f.metadata["spec"] for f in dataclasses.fields(NodeConfig) if "spec" in f.metadata
}


def node_config(values: dict[str, Any]) -> NodeConfig:
    """Build the typed config from parameter values (rclpy's arrays as lists); raises
    ValueError naming the parameter at fault."""
    plain = {k: list(v) if isinstance(v, array.array) else v for k, v in values.items()}
    return from_mapping(NodeConfig, plain)


def params_yaml() -> str:
    """The text of config/ivtuning.yaml: every parameter, its default and its documentation.

    Regenerate the file with `python -c "from ivtuning_ros.ros.params import params_yaml;
    print(params_yaml(), end='')" > config/ivtuning.yaml`; a test keeps the two equal.
    """
    import json
    import textwrap

    lines = [
        "# ivtuning_node parameters: every one, with its default.",
        "#   ivtuning_node --ros-args --params-file config/ivtuning.yaml",
        "#   ros2 launch ivtuning_ros ivtuning.launch.py params_file:=my_params.yaml",
        "# [live] = may be changed at run time (ros2 param set); others apply at configure.",
        "/**:",
        "  ros__parameters:",
    ]
    for name, spec in SPECS.items():
        doc = spec.description + (" [live]" if spec.live else "")
        if spec.choices:
            doc += f" Choices: {', '.join(spec.choices)}."
        if spec.range:
            doc += f" Range: [{spec.range[0]}, {spec.range[1]}]."
        lines += [f"    # {line}" for line in textwrap.wrap(doc, 88)]
        v = spec.default
        if isinstance(v, bool):
            text = "true" if v else "false"
        elif isinstance(v, list):
            text = "[" + ", ".join(repr(x) for x in v) + "]"
        else:
            text = json.dumps(v)
        lines += [f"    {name}: {text}", ""]
    return "\n".join(lines).rstrip() + "\n"
