"""The node's per-pair steps as plain functions, shared with offline replay.

`load_node_models` loads the checkpoint (and the fallback model) with the node's engine
settings; `process_pair` is the per-pair step: `pair_inputs` turns a synchronised pair
into model inputs (decode, thermal normalisation, thermal -> RGB geometry),
`NodeModels.for_pair` picks the model, its Predictor predicts. The node and offline
replay (replay/offline.py) both call `process_pair`, so a bag replayed offline goes
through the very code that runs on the robot.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ivtuning_ros.preprocess import ThermalNorm
from ivtuning_ros.tracking import DetectionTracker
from ivtuning_ros.types import CAMERAS

from .codec import ImageDecodeError, image_to_rgb, image_to_thermal
from .params import NodeConfig
from .sync import SyncedPair

if TYPE_CHECKING:
    from ivtuning_ros.engine.engine import Engine
    from ivtuning_ros.engine.predictor import Predictor

# The node normalises thermal itself (it knows the camera's encoding and parameters);
# the engine then receives values already in [0, 1].
IDENTITY_NORM = ThermalNorm("fixed", 0.0, 1.0)


@dataclass
class ThermalMemo:
    """The last thermal frame's model input. Under sync_policy reference one thermal
    frame serves several RGB frames (30 Hz RGB beside a 9 Hz core: three), and decoding a
    PNG and normalising it is milliseconds each time. The sources (thermal message, node
    config, checkpoint norm) are matched by identity and held, so the identities stay
    valid; a config change is a new NodeConfig object."""

    sources: tuple = ()
    target: tuple[int, int] | None = None
    thermal_hw: tuple[int, int] = (0, 0)
    value: np.ndarray | None = None

    def get(self, sources: tuple, target: tuple[int, int] | None) -> np.ndarray | None:
        hit = self.value is not None and target == self.target
        hit = hit and all(a is b for a, b in zip(sources, self.sources, strict=True))
        return self.value if hit else None

    def put(
        self,
        sources: tuple,
        target: tuple[int, int] | None,
        thermal_hw: tuple[int, int],
        value: np.ndarray,
    ) -> None:
        value.flags.writeable = False  # shared with the next RGB frames: never altered
        self.sources, self.target, self.thermal_hw, self.value = sources, target, thermal_hw, value


def pair_inputs(
    pair: SyncedPair,
    cfg: NodeConfig,
    checkpoint_norm: ThermalNorm,
    last_rgb_hw: tuple[int, int] | None,
    count: Callable[[str, str], None],
    memo: ThermalMemo | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(rgb uint8 RGB | None, thermal in [0, 1] on the RGB grid | None).

    Thermal is normalised at its own resolution (percentiles over real pixels), then
    mapped onto the RGB image (or, for a thermal-only pair, onto the last RGB size seen,
    so boxes stay in RGB pixels) with the configured crop/affine or a resize.
    `count(key, why)` records problems that do not drop the frame (a stretched aspect
    ratio). Raises ImageDecodeError (naming the stream) for frames that must be dropped.
    With a `memo`, a thermal frame met again with the same settings and RGB size is
    reused (read-only) instead of decoded again.
    """
    rgb = image_to_rgb(pair.rgb.msg) if pair.rgb is not None else None
    if pair.thermal is None:
        return rgb, None
    target = rgb.shape[:2] if rgb is not None else last_rgb_hw
    sources = (pair.thermal.msg, cfg, checkpoint_norm)
    t01 = memo.get(sources, target) if memo is not None else None
    if t01 is None:
        raw, encoding = image_to_thermal(pair.thermal.msg)
        try:
            t01 = cfg.norm_for(encoding, checkpoint_norm).normalize(raw)
            if target:
                t01 = cfg.geometry.apply(t01, target)
        except ValueError as err:
            raise ImageDecodeError("thermal", str(err)) from None
        thermal_hw = raw.shape[:2]
        if memo is not None:
            memo.put(sources, target, thermal_hw, t01)
    else:
        thermal_hw = memo.thermal_hw
    if target and cfg.geometry.aspect_mismatch(thermal_hw, target):
        count(
            "thermal_aspect_mismatch",
            f"thermal {thermal_hw[1]}x{thermal_hw[0]} and RGB {target[1]}x{target[0]} differ "
            "in aspect ratio and are stretched: set thermal_crop, or thermal_homography from "
            "`ivtuning calibrate`",
        )
    return rgb, t01


def _rig(frame_id: str) -> str:
    """The namespace part of a frame id ("robot1/rgb_optical" -> "robot1")."""
    head, _, _ = frame_id.strip("/").rpartition("/")
    return head


class FrameIdCheck:
    """Frame ids that say the two images do not belong together: a pair whose frames
    name different rigs (robot1/... beside robot2/...), or a camera whose frame id
    changes (another device now publishes on its topic). Fused anyway, as before; the
    node counts each pair and warns once per kind."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}

    def problems(self, frame_ids: dict[str, str]) -> list[tuple[str, str]]:
        out = []
        for cam, fid in frame_ids.items():
            first = self.first.setdefault(cam, fid)
            if fid != first:
                why = f"{cam} frames now come from {fid!r}, first from {first!r}"
                out.append((f"{cam}_frame_id_changed", why))
        if len(frame_ids) == 2:
            rigs = {cam: _rig(fid) for cam, fid in frame_ids.items()}
            if all(rigs.values()) and len(set(rigs.values())) == 2:
                out.append(
                    (
                        "frame_id_mismatch",
                        "the pair's frames name different rigs: "
                        + ", ".join(f"{c} {frame_ids[c]!r}" for c in frame_ids)
                        + " (fused anyway: check the topic remaps)",
                    )
                )
        return out


def node_predictor(engine: Engine, cfg: NodeConfig) -> Predictor:
    """The engine's Predictor with the configured thresholds and the identity thermal
    norm: thermal arrives already normalised from `pair_inputs`."""
    from ivtuning_ros.engine.predictor import Predictor

    return Predictor(
        engine,
        score_threshold=cfg.score_threshold_for(engine.info.score_threshold),
        iou_threshold=float(cfg.nms_iou),
        max_detections=int(cfg.max_detections),
        thermal_norm=IDENTITY_NORM,
    )


@dataclass
class FrameState:
    """What the per-pair step remembers between pairs."""

    last_rgb: tuple[tuple[int, int], str] | None = None  # (h, w), frame_id of the last RGB
    thermal_memo: ThermalMemo = field(default_factory=lambda: ThermalMemo())
    frame_ids: FrameIdCheck = field(default_factory=lambda: FrameIdCheck())
    tracker: DetectionTracker | None = None  # made by `tracker_for`, when tracking

    def tracker_for(self, cfg: NodeConfig) -> DetectionTracker:
        """The rig's tracker, made at the first call (the node calls it at configure:
        importing the tracking library takes ~1 s, too long for the first result)."""
        if self.tracker is None:
            self.tracker = DetectionTracker(cfg.tracking_config)
        return self.tracker


@dataclass
class FrameResult:
    """One pair's way through the model: the inputs it got and the prediction."""

    rgb: np.ndarray | None  # uint8 RGB
    thermal01: np.ndarray | None  # [0, 1] on the RGB grid
    prediction: Any  # engine.predictor.Prediction
    modality: str  # "both", "rgb" or "thermal": the cameras the result saw
    fallback: bool  # made by the fallback model
    infer_s: float  # Predictor.predict wall time
    frame_problems: list[tuple[str, str]]  # (count key, why): fused anyway


def process_pair(
    pair: SyncedPair,
    cfg: NodeConfig,
    models: NodeModels,
    state: FrameState,
    count: Callable[[str, str], None],
) -> FrameResult:
    """The per-pair step of the node and of offline replay (no rclpy): decode, normalise
    and register, pick the model, predict. Raises ImageDecodeError (a frame to drop,
    naming the camera) or ValueError (inference failed, e.g. non-finite outputs):
    `frame_error_key` names the counter either goes to."""
    engine, predictor = models.for_pair(pair)
    last_hw = state.last_rgb[0] if state.last_rgb else None
    rgb, thermal01 = pair_inputs(pair, cfg, engine.thermal_norm, last_hw, count, state.thermal_memo)
    if rgb is not None:
        state.last_rgb = (rgb.shape[:2], pair.rgb.msg.header.frame_id)
    frame_ids = {
        cam: part.msg.header.frame_id for cam in CAMERAS if (part := getattr(pair, cam)) is not None
    }
    problems = state.frame_ids.problems(frame_ids)
    t0 = time.perf_counter()
    pred = predictor.predict(rgb, thermal01)
    infer_s = time.perf_counter() - t0
    if cfg.tracking and pred.detections is not None:
        tracked = state.tracker_for(cfg).update(pred.detections, pair.reference.stamp_ns * 1e-9)
        pred = dataclasses.replace(pred, detections=tracked)
    modality = (
        "both"
        if rgb is not None and thermal01 is not None
        else ("rgb" if rgb is not None else "thermal")
    )
    return FrameResult(
        rgb, thermal01, pred, modality, engine is not models.engine, infer_s, problems
    )


def frame_error_key(err: Exception) -> str | None:
    """The counter a per-pair failure goes to; None for an unexpected error (a bug)."""
    if isinstance(err, ImageDecodeError):
        return f"{err.what}_bad_input"
    if isinstance(err, ValueError):  # e.g. non-finite network output: frame dropped
        return "inference_error"
    return None


def resolve_checkpoint(path: str) -> Path:
    """Absolute, else relative to the working directory, else to the package share dir."""
    p = Path(path).expanduser()
    tried = [p if p.is_absolute() else Path.cwd() / p]
    if not p.is_absolute():
        try:
            from ivtuning_ros.paths import share_dir

            tried.append(share_dir() / p)
        except FileNotFoundError:
            pass
    for cand in tried:
        if cand.is_file():
            return cand
    raise FileNotFoundError(
        f"checkpoint {path!r} not found (looked at {', '.join(str(t) for t in tried)})"
    )


@dataclass
class NodeModels:
    """The node's model and, with `fallback_checkpoint`, a second one for the lone frames
    of a camera the first cannot run on alone: an rgb_only model beside a thermal-primary
    one keeps results coming when the thermal camera fails. Both have the same task and
    classes, so an output means the same whichever model made it."""

    engine: Engine
    predictor: Predictor
    fallback: Engine | None = None
    fallback_predictor: Predictor | None = None

    @property
    def standalone_cameras(self) -> tuple[str, ...]:
        """The cameras whose lone frames one of the models can run on."""
        engines = [e for e in (self.engine, self.fallback) if e is not None]
        return tuple(c for c in CAMERAS if any(c in e.info.standalone_cameras for e in engines))

    def for_pair(self, pair: SyncedPair) -> tuple[Engine, Predictor]:
        """The fallback for a lone frame the main model cannot run on; else the main one."""
        lone = "thermal" if pair.rgb is None else "rgb" if pair.thermal is None else None
        if self.fallback is not None and lone not in (None, *self.engine.info.standalone_cameras):
            return self.fallback, self.fallback_predictor
        return self.engine, self.predictor

    def set_thresholds(self, cfg: NodeConfig) -> None:
        for engine, predictor in self.loaded():
            predictor.set_thresholds(
                cfg.score_threshold_for(engine.info.score_threshold),
                float(cfg.nms_iou),
                int(cfg.max_detections),
            )

    def close(self) -> None:
        for engine, _ in self.loaded():
            engine.close()

    def loaded(self) -> list[tuple[Engine, Predictor]]:
        pairs = [(self.engine, self.predictor)]
        if self.fallback is not None:
            pairs.append((self.fallback, self.fallback_predictor))
        return pairs


def fallback_problem(main: Engine, fallback: Engine) -> str | None:
    """Why `fallback` cannot stand in for `main` on lone frames, or None."""
    if fallback.task != main.task:
        return f"a {fallback.task} model beside a {main.task} one"
    if tuple(fallback.class_names) != tuple(main.class_names):
        return f"classes {list(fallback.class_names)} differ from {list(main.class_names)}"
    adds = set(fallback.info.standalone_cameras) - set(main.info.standalone_cameras)
    if not adds:
        return (
            f"it runs alone on {' or '.join(fallback.info.standalone_cameras)} frames only, as "
            "the main model does: it would never run"
        )
    return None


def load_node_models(
    cfg: NodeConfig,
    log: Callable[[str], None] = lambda _: None,
    warn: Callable[[str], None] | None = None,
) -> NodeModels:
    """The checkpoint and the fallback checkpoint loaded with the node's engine settings;
    raises (FileNotFoundError, ValueError, ...) naming what is wrong."""
    from ivtuning_ros.engine.config import EngineConfig
    from ivtuning_ros.engine.engine import load_engine

    settings: dict[str, Any] = {
        "backend": cfg.backend,
        "precision": cfg.precision,
        "warmup_runs": int(cfg.warmup_runs),
        "num_threads": int(cfg.num_threads),
        "device": cfg.device,
    }
    if cfg.cache_dir:
        settings["cache_dir"] = Path(cfg.cache_dir)
    if cfg.int8_calibration_dir:
        settings["calibration_dir"] = Path(cfg.int8_calibration_dir)

    def load(path: Path) -> Engine:
        log(f"loading {path} ({cfg.backend}, {cfg.precision})")
        return load_engine(path, EngineConfig(**settings), log=log, warn=warn)

    engine = load(resolve_checkpoint(cfg.checkpoint))
    if not cfg.fallback_checkpoint:
        return NodeModels(engine, node_predictor(engine, cfg))
    try:
        fallback = load(resolve_checkpoint(cfg.fallback_checkpoint))
    except Exception:
        engine.close()
        raise
    problem = fallback_problem(engine, fallback)
    if problem:
        engine.close()
        fallback.close()
        raise ValueError(f"fallback_checkpoint {cfg.fallback_checkpoint}: {problem}")
    return NodeModels(engine, node_predictor(engine, cfg), fallback, node_predictor(fallback, cfg))
