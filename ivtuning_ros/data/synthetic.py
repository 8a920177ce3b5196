"""Synthetic night/fog RGB-T road scenes: the public entry points.

`SceneSequence(condition, seed, size).frame(t)` renders a moving scene (for bags and the
demo); `render_sample` renders one still; `generate` yields a reproducible data set over
several conditions. Everything is deterministic by seed: the same (condition, seed,
size, t) gives the same pixels. Detection classes are `SYNTH_CLASSES`
("person", "car", "bicycle", "dog", ids 0..3); semantic masks use `SEG_CLASSES`
(0 background, 1 road, 2 person, 3 car, 4 bicycle, 5 dog, 255 ignore); saliency masks
mark every labelled object covering at least 0.4% of the image.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ivtuning_ros.data.conditions import CONDITIONS, Condition, get_condition
from ivtuning_ros.data.render import FrameRenderer
from ivtuning_ros.data.scene import (
    SEG_CLASSES,
    SYNTH_CLASSES,
    check_zoom,
    parse_thermal_optics,
    sample_scene,
    sample_thermal_optics,
)
from ivtuning_ros.data.writers import write_coco_split
from ivtuning_ros.types import RGBTSample

__all__ = [
    "CONDITIONS",
    "SEG_CLASSES",
    "SYNTH_CLASSES",
    "SceneSequence",
    "generate",
    "render_sample",
    "sample_spec",
    "write_synthetic",
]

DEFAULT_SIZE = (320, 256)  # (width, height)


class SceneSequence:
    """One scene whose actors move smoothly over time.

    size is (width, height) in pixels, as in cv2 and `--size WxH`. thermal_bits 8 gives
    AGC images in 0..255; 16 gives TLinear counts (kelvin x 100). thermal_optics is
    the thermal camera's sharpness: "fixed", "varied" (drawn per scene) or "SCALE:SIGMA"
    (scene.ThermalOptics, scene.parse_thermal_optics).
    """

    class_names = SYNTH_CLASSES

    def __init__(
        self,
        condition: str | Condition,
        seed: int,
        size: tuple[int, int] = DEFAULT_SIZE,
        thermal_bits: int = 8,
        zoom: float = 1.0,
        thermal_optics: str = "fixed",
    ) -> None:
        self.condition = get_condition(condition) if isinstance(condition, str) else condition
        w, h = (int(v) for v in size)
        if w < 32 or h < 32:
            raise ValueError(f"synthetic image size must be at least 32x32, got {w}x{h}")
        if thermal_bits not in (8, 16):
            raise ValueError(f"thermal_bits must be 8 or 16, got {thermal_bits}")
        check_zoom(zoom)
        self.seed = int(seed)
        self.size = (w, h)
        self.thermal_bits = thermal_bits
        scene_rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x5CE4E]))
        optics_rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x0971C5]))
        self.scene = replace(
            sample_scene(scene_rng, self.size, self.condition, zoom),
            thermal_optics=sample_thermal_optics(thermal_optics, optics_rng),
        )
        self._renderer = FrameRenderer(self.scene, self.condition)

    def frame(self, t_seconds: float, name: str | None = None) -> RGBTSample:
        """The scene at time t (sensor noise is drawn from (seed, t), so it is repeatable)."""
        key = round(float(t_seconds) * 1000.0)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xF0A3E, key & 0xFFFFFFFF]))
        sample = self._renderer.render(float(t_seconds), rng, self.thermal_bits)
        sample.name = name or f"{self.condition.name}_{self.seed}_{key:08d}"
        return sample


def render_sample(
    condition: str | Condition,
    seed: int,
    size: tuple[int, int] = DEFAULT_SIZE,
    thermal_bits: int = 8,
    name: str | None = None,
    zoom: float = 1.0,
    thermal_optics: str = "fixed",
) -> RGBTSample:
    """One still frame of a fresh scene."""
    return SceneSequence(condition, seed, size, thermal_bits, zoom, thermal_optics).frame(0.0, name)


def sample_spec(conditions: Sequence[str], seed: int, index: int) -> tuple[Condition, int, str]:
    """(condition, scene seed, name) of sample `index` of a generated set: it depends only
    on (conditions, seed, index), so sets of any size agree on their common prefix."""
    if not conditions:
        raise ValueError("need at least one condition")
    cond = get_condition(conditions[index % len(conditions)])
    scene_seed = int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])
    return cond, scene_seed, f"{cond.name}_{seed}_{index:06d}"


def generate(
    conditions: Sequence[str],
    count: int,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    thermal_bits: int = 8,
    zoom: float = 1.0,
    thermal_optics: str = "fixed",
) -> Iterator[RGBTSample]:
    """`count` stills cycling through `conditions` (see `sample_spec`)."""
    for cond in conditions:
        get_condition(cond)  # fail before rendering anything
    check_zoom(zoom)
    parse_thermal_optics(thermal_optics)
    for i in range(count):
        cond, scene_seed, name = sample_spec(conditions, seed, i)
        yield render_sample(cond, scene_seed, size, thermal_bits, name, zoom, thermal_optics)


def split_seed(seed: int, split: str) -> int:
    """Seed of one named split: splits never share scenes, and adding one changes none."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(split.encode())]).generate_state(1)[0])


def write_synthetic(
    out: Path,
    conditions: Sequence[str],
    splits: dict[str, int],
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    tasks: Sequence[str] = ("detection", "segmentation", "saliency"),
    thermal_bits: int = 8,
    overwrite: bool = False,
    progress: bool = True,
    zoom: float = 1.0,
    thermal_optics: str = "fixed",
) -> dict[str, Path]:
    """Render and write each split (name -> count) as COCO + png under `out`."""
    for cond in conditions:
        get_condition(cond)
    check_zoom(zoom)
    parse_thermal_optics(thermal_optics)
    written = {}
    for split, count in splits.items():
        if count <= 0:
            raise ValueError(f"split {split!r}: count must be positive, got {count}")
        s_seed = split_seed(seed, split)
        specs = [sample_spec(conditions, s_seed, i) for i in range(count)]
        cond_of = {name: cond.name for cond, _, name in specs}
        written[split] = write_coco_split(
            (
                render_sample(cond, sd, size, thermal_bits, name, zoom, thermal_optics)
                for cond, sd, name in specs
            ),
            out,
            split,
            SYNTH_CLASSES,
            segmentation_classes=SEG_CLASSES,
            tasks=tasks,
            info={
                "description": "ivtuning_ros synthetic night/fog RGB-T road scenes",
                "conditions": list(conditions),
                "seed": int(seed),
                "split_seed": s_seed,
                "size": list(size),
                "zoom": float(zoom),
                "thermal_optics": thermal_optics,
                "thermal": "agc8" if thermal_bits == 8 else "y16 TLinear centikelvin",
            },
            fields_of=lambda s, cond_of=cond_of: {"condition": cond_of[s.name]},
            total=count,
            overwrite=overwrite,
            progress=progress,
        )
    return written
