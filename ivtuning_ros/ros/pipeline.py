"""The node's per-pair steps as plain functions, shared with offline replay.

`pair_inputs` turns a synchronised pair into model inputs exactly as the live node does
(decode, thermal normalisation, thermal -> RGB geometry); `node_predictor` builds the
Predictor the node uses. Offline replay (replay/offline.py) calls the same two functions,
so a bag replayed offline goes through the very code that runs on the robot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ivtuning_ros.preprocess import ThermalNorm

from .codec import ImageDecodeError, image_to_rgb, image_to_thermal
from .params import NodeConfig
from .sync import SyncedPair

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
            "in aspect ratio and are stretched: set thermal_crop or thermal_affine",
        )
    return rgb, t01


def node_predictor(engine, cfg: NodeConfig):
    """A Predictor on a view of `engine` whose thermal norm is the identity (thermal
    arrives normalised from `pair_inputs`), with the configured thresholds."""
    from ivtuning_ros.engine.engine import Engine
    from ivtuning_ros.engine.predictor import Predictor

    view = Engine(
        engine.backend,
        replace(engine.info, thermal_norm=IDENTITY_NORM),
        engine.key,
        engine.artifact,
        engine.built,
        engine.reason,
    )
    return Predictor(
        view,
        score_threshold=cfg.score_threshold_for(engine.info.score_threshold),
        iou_threshold=float(cfg.nms_iou),
        max_detections=int(cfg.max_detections),
    )
