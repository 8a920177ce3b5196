"""Scene layout for the synthetic night road: camera, ground, buildings, lamps and actors.

A scene is sampled once from a seed and is then a pure function of time: every actor
moves at constant velocity and wraps around outside the view, so a sequence of frames
shows smooth motion. What each actor looks like lives in `shapes.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ivtuning_ros.data.conditions import Condition

SYNTH_CLASSES: tuple[str, ...] = ("person", "car", "bicycle", "dog")
# Semantic-mask ids: 0 background (sky, buildings, pavement, poles), 1 road, and the
# detection classes shifted by 2 (person 2, car 3, bicycle 4, dog 5); 255 = ignore
# (objects too small or too occluded to be labelled as boxes).
SEG_CLASSES: tuple[str, ...] = ("background", "road", "person", "car", "bicycle", "dog")
SEG_OFFSET = 2
CLUTTER = -1  # class id of poles, trees, cabinets: drawn and occluding, never labelled

SODIUM = (1.0, 0.62, 0.25)
LED = (0.85, 0.92, 1.0)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera looking along the road, optical axis level with the ground."""

    width: int
    height: int
    focal: float  # pixels
    horizon: float  # image row of the horizon
    height_m: float  # camera height above the ground

    @property
    def cx(self) -> float:
        return self.width / 2.0

    def ground_y(self, z: float) -> float:
        return self.horizon + self.focal * self.height_m / z

    def x_of(self, x: float, z: float) -> float:
        return self.cx + self.focal * x / z


@dataclass(frozen=True)
class ThermalOptics:
    """The thermal camera's detector and lens, relative to the rendered image.

    The default, a detector of half the image's resolution behind a soft lens, is a small
    core (a 160x128 Lepton beside a 320x256 image). Real cores are often much sharper at
    the network's input: a 640x512 core is downscaled to it. A model trained on soft
    thermal images alone loses detections on sharp ones, so training sets can vary it
    (`thermal_optics: varied`).
    """

    detector_scale: float = 0.5  # detector pixels per image pixel, in (0, 1]
    blur_sigma: float = 0.8  # lens blur, in detector pixels

    def __post_init__(self) -> None:
        if not 0.0 < self.detector_scale <= 1.0:
            raise ValueError(f"detector_scale must be in (0, 1], got {self.detector_scale}")
        if self.blur_sigma < 0.0:
            raise ValueError(f"blur_sigma must be >= 0, got {self.blur_sigma}")


# How a generated set chooses each scene's thermal optics: "fixed" is ThermalOptics()
# for every scene (every set rendered before the choice existed); "varied" draws the
# detector from a Lepton-like half resolution to one as sharp as the image, and the
# lens blur, per scene; "SCALE:SIGMA" (e.g. "1:0.5") is one camera for every scene.
VARIED_DETECTOR_SCALE = (0.5, 1.0)
VARIED_BLUR_SIGMA = (0.3, 0.9)


def parse_thermal_optics(choice: str) -> ThermalOptics | None:
    """The optics every scene gets, or None for "varied" (drawn per scene)."""
    if choice == "fixed":
        return ThermalOptics()
    if choice == "varied":
        return None
    scale, sep, sigma = choice.partition(":")
    try:
        values = (float(scale), float(sigma)) if sep else None
    except ValueError:
        values = None
    if values is None:
        raise ValueError(
            f"thermal_optics must be fixed, varied or SCALE:SIGMA (detector pixels per image "
            f"pixel, lens blur in detector pixels; e.g. 1:0.5), got {choice!r}"
        )
    return ThermalOptics(*values)


def sample_thermal_optics(choice: str, rng: np.random.Generator) -> ThermalOptics:
    """The optics of one scene; `rng` is used only for "varied", so the other choices
    keep every other draw, and the RGB pixels, unchanged."""
    optics = parse_thermal_optics(choice)
    if optics is not None:
        return optics
    return ThermalOptics(
        detector_scale=float(rng.uniform(*VARIED_DETECTOR_SCALE)),
        blur_sigma=float(rng.uniform(*VARIED_BLUR_SIGMA)),
    )


@dataclass(frozen=True)
class Lamp:
    x: float  # lamp head position, m
    z: float
    y: float  # height, m
    color: tuple[float, float, float]
    on: bool


@dataclass(frozen=True)
class Actor:
    """One moving thing. `cls` is a SYNTH_CLASSES index, or CLUTTER."""

    kind: str  # person | rider | car | bicycle | dog | pole | tree | cabinet
    cls: int
    x: float
    z: float
    vx: float
    vz: float
    size: float  # height in m (person, dog, car); wheel base for bicycles
    color: tuple[float, float, float]  # visible albedo of the main surface
    warmth: float  # 0..1: clothing/fur insulation or engine state
    phase: float  # gait phase offset
    facing: int  # +1 / -1: side-view direction, or for cars 1 = front seen, -1 = rear
    x_range: tuple[float, float]
    z_range: tuple[float, float]
    lamp_on: bool = False  # car head/tail lights, bicycle light

    def position(self, t: float) -> tuple[float, float]:
        x = _wrap(self.x + self.vx * t, self.x_range)
        z = _wrap(self.z + self.vz * t, self.z_range)
        return x, z


def _wrap(v: float, lim: tuple[float, float]) -> float:
    lo, hi = lim
    return lo + (v - lo) % (hi - lo) if hi > lo else v


@dataclass(frozen=True)
class Facade:
    """Building fronts along one side of the road (a vertical plane at |x| = distance)."""

    side: int  # -1 left, +1 right
    distance: float
    z_edges: np.ndarray  # (K+1,) segment boundaries along z
    heights: np.ndarray  # (K,) building heights, 0 = gap
    colors: np.ndarray  # (K, 3) albedo
    lit_seed: int  # which windows are lit
    windows: bool = True  # False: a tree line
    temp_offset: float = 1.5  # surface temperature above ambient, degrees C


@dataclass(frozen=True)
class Scene:
    camera: Camera
    ambient_c: float  # air temperature, degrees C
    road_half: float
    sidewalk: float
    facades: tuple[Facade, ...]
    lamps: tuple[Lamp, ...]
    actors: tuple[Actor, ...]
    layout: str  # city | suburb | rural
    ego_headlights: bool
    fpn_seed: int  # fixed-pattern noise of the thermal sensor
    thermal_optics: ThermalOptics = ThermalOptics()

    @property
    def lane(self) -> float:
        return self.road_half / 2.0


ZOOM_RANGE = (0.25, 8.0)  # focal length multipliers that still give a road scene


def check_zoom(zoom: float) -> None:
    if not ZOOM_RANGE[0] <= zoom <= ZOOM_RANGE[1]:
        raise ValueError(
            f"zoom (focal length multiplier) must be in [{ZOOM_RANGE[0]}, {ZOOM_RANGE[1]}], "
            f"got {zoom}"
        )


def sample_scene(
    rng: np.random.Generator, size: tuple[int, int], cond: Condition, zoom: float = 1.0
) -> Scene:
    """Draw a random road layout; `size` is (width, height) in pixels. zoom multiplies
    the focal length (1: a ~54 deg horizontal field of view; 1.6: a ~35 deg lens, every
    object 1.6x larger) without changing any other draw."""
    w, h = size
    cam = Camera(
        width=w,
        height=h,
        focal=w * rng.uniform(0.85, 1.1) * zoom,
        horizon=h * rng.uniform(0.36, 0.46),
        height_m=rng.uniform(1.2, 1.7),
    )
    layout = str(rng.choice(["city", "suburb", "rural"], p=[0.5, 0.3, 0.2]))
    road_half = rng.uniform(3.2, 5.5)
    sidewalk = rng.uniform(2.0, 3.5)
    facades = tuple(
        _sample_facade(rng, side, road_half + sidewalk + rng.uniform(0.5, 6.0), layout)
        for side in (-1, 1)
    )
    lamps, poles = _sample_lamps(rng, road_half, cond, layout)
    actors = [*poles, *_sample_clutter(rng, road_half, sidewalk, facades, layout)]
    actors += _sample_actors(rng, road_half, sidewalk)
    actors.sort(key=lambda a: -a.z)
    return Scene(
        camera=cam,
        ambient_c=rng.uniform(-2.0, 16.0),
        road_half=road_half,
        sidewalk=sidewalk,
        facades=facades,
        lamps=tuple(lamps),
        actors=tuple(actors),
        layout=layout,
        ego_headlights=bool(rng.random() < cond.ego_headlights),
        fpn_seed=int(rng.integers(2**31)),
    )


def _sample_facade(rng: np.random.Generator, side: int, distance: float, layout: str) -> Facade:
    """City: tall blocks with windows; suburb: low, set-back houses with gaps; rural: a
    jagged tree line, cooler than the air at night."""
    n = 64
    if layout == "rural":
        lengths = rng.uniform(1.5, 4.0, size=n)
        heights = rng.uniform(4.0, 12.0, size=n) * (rng.random(n) > 0.1)
        colors = rng.uniform(0.02, 0.06, size=(n, 1)) * np.array([[0.8, 1.0, 0.6]])
        distance += rng.uniform(4.0, 25.0)
    elif layout == "suburb":
        lengths = rng.uniform(8.0, 20.0, size=n)
        heights = rng.uniform(3.0, 8.0, size=n) * (rng.random(n) > 0.45)
        colors = rng.uniform(0.12, 0.5, size=(n, 1)) * rng.uniform(0.75, 1.0, size=(n, 3))
        distance += rng.uniform(3.0, 10.0)
    else:
        lengths = rng.uniform(6.0, 25.0, size=n)
        heights = rng.uniform(4.0, 18.0, size=n) * (rng.random(n) > 0.2)
        colors = rng.uniform(0.12, 0.45, size=(n, 1)) * rng.uniform(0.75, 1.0, size=(n, 3))
    start = rng.uniform(-2.0, 6.0)
    edges = np.concatenate([[start], start + np.cumsum(lengths)])
    return Facade(
        side,
        distance,
        edges,
        heights,
        colors.astype(np.float32),
        int(rng.integers(1e9)),
        windows=layout != "rural",
        temp_offset=-1.0 if layout == "rural" else 1.5,
    )


def _fixture(kind: str, x: float, z: float, size: float, color, warmth: float, side) -> Actor:
    """Roadside clutter that never moves (trees, cabinets), facing the road."""
    return Actor(kind=kind, cls=CLUTTER, x=float(x), z=z, vx=0.0, vz=0.0, size=size,
                 color=color, warmth=warmth, phase=0.0, facing=int(side),
                 x_range=(-1e3, 1e3), z_range=(-1e3, 1e3))  # fmt: skip


def _sample_clutter(
    rng: np.random.Generator, road_half: float, sidewalk: float, facades, layout: str
) -> list[Actor]:
    """Things that are not labelled but occlude, and in thermal sometimes look warm:
    trees along suburban and rural roads, roadside cabinets (warm electronics)."""
    out = []
    n_trees = {"city": 0, "suburb": int(rng.integers(2, 8)), "rural": int(rng.integers(4, 14))}
    for _ in range(n_trees[layout]):
        side = rng.choice([-1, 1])
        limit = facades[0 if side < 0 else 1].distance - 0.5
        x = side * min(road_half + sidewalk + rng.uniform(0.3, 4.0), limit)
        green = tuple(float(v) for v in rng.uniform(0.02, 0.07) * np.array([0.7, 1.0, 0.5]))
        z, size = rng.uniform(3.0, 90.0), rng.uniform(4.0, 9.0)
        out.append(_fixture("tree", x, z, size, green, 0.0, side))
    for _ in range(int(rng.integers(0, 3))):
        side = rng.choice([-1, 1])
        x = side * (road_half + rng.uniform(0.3, sidewalk))
        grey = tuple(float(v) for v in rng.uniform(0.1, 0.4) * np.ones(3))
        z, size, warmth = rng.uniform(4.0, 60.0), rng.uniform(0.9, 1.5), rng.uniform(0.0, 1.0)
        out.append(_fixture("cabinet", x, z, size, grey, warmth, side))
    return out


def _sample_lamps(
    rng: np.random.Generator, road_half: float, cond: Condition, layout: str
) -> tuple[list[Lamp], list[Actor]]:
    lamps, poles = [], []
    if layout == "rural" and rng.random() < 0.6:
        return lamps, poles  # an unlit country road: headlights only
    spacing = rng.uniform(22.0, 40.0) * (1.6 if layout == "rural" else 1.0)
    color = SODIUM if rng.random() < 0.5 else LED
    sides = (1,) if rng.random() < 0.5 else (-1, 1)
    for side in sides:
        z = rng.uniform(3.0, spacing) + (spacing / 2 if side < 0 else 0.0)
        while z < 140.0:
            x_pole = side * (road_half + 0.4)
            on = bool(rng.random() < cond.streetlight_on)
            lamps.append(Lamp(x_pole - side * 1.6, z, 7.0, color, on))
            poles.append(
                Actor(
                    kind="pole",
                    cls=CLUTTER,
                    x=x_pole,
                    z=z,
                    vx=0.0,
                    vz=0.0,
                    size=7.0,
                    color=(0.35, 0.35, 0.35),
                    warmth=0.0,
                    phase=0.0,
                    facing=side,
                    x_range=(-1e3, 1e3),
                    z_range=(-1e3, 1e3),
                    lamp_on=on,
                )
            )
            z += spacing
    return lamps, poles


def _sample_actors(rng: np.random.Generator, road_half: float, sidewalk: float) -> list[Actor]:
    """People (some with dogs), stray dogs, cars and bicycles, drawn in that order (the
    order of the draws is part of every seeded scene)."""
    return [
        *_people(rng, road_half, sidewalk),
        *_stray_dogs(rng, road_half),
        *_cars(rng, road_half),
        *_bicycles(rng, road_half),
    ]


def _cross_range(z: float) -> tuple[float, float]:
    half = z * 0.75 + 4.0  # beyond the widest field of view: wraps unseen
    return (-half, half)


def _clothes(rng: np.random.Generator) -> tuple[float, float, float]:
    base = rng.uniform(0.03, 0.5)
    tint = rng.uniform(0.5, 1.0, size=3)
    return tuple(float(v) for v in base * tint)


def _people(rng: np.random.Generator, road_half: float, sidewalk: float) -> list[Actor]:
    actors: list[Actor] = []
    for _ in range(int(rng.integers(1, 7))):  # people
        mode = rng.choice(["sidewalk", "cross", "stand"], p=[0.5, 0.3, 0.2])
        z = _depth(rng, 4.0, 60.0)
        height = rng.uniform(1.5, 1.95)
        if mode == "sidewalk":
            side = rng.choice([-1, 1])
            x = side * (road_half + rng.uniform(0.4, sidewalk - 0.3))
            vx, vz = 0.0, rng.choice([-1, 1]) * rng.uniform(0.8, 1.6)
        elif mode == "cross":
            x, vx, vz = (
                rng.uniform(-road_half, road_half),
                rng.choice([-1, 1]) * rng.uniform(0.8, 1.6),
                0.0,
            )
        else:
            x, vx, vz = rng.uniform(-road_half - sidewalk, road_half + sidewalk), 0.0, 0.0
        facing = 1 if vx >= 0 else -1
        person = Actor(
            kind="person",
            cls=0,
            x=x,
            z=z,
            vx=vx,
            vz=vz,
            size=height,
            color=_clothes(rng),
            warmth=rng.uniform(0.25, 0.6),
            phase=rng.uniform(0, 2 * math.pi),
            facing=facing,
            x_range=_cross_range(z),
            z_range=(-10.0, 90.0),
        )
        actors.append(person)
        if rng.random() < 0.25:  # a dog on a lead
            actors.append(
                _dog(
                    rng,
                    x + rng.choice([-0.7, 0.7]),
                    z + rng.uniform(-0.3, 0.3),
                    vx,
                    vz,
                    _cross_range(z),
                )
            )
    return actors


def _stray_dogs(rng: np.random.Generator, road_half: float) -> list[Actor]:
    actors: list[Actor] = []
    for _ in range(int(rng.integers(0, 2)) if rng.random() < 0.3 else 0):  # stray dogs
        z = _depth(rng, 4.0, 40.0)
        vx = rng.choice([-1, 1]) * rng.uniform(0.5, 2.5) if rng.random() < 0.7 else 0.0
        actors.append(_dog(rng, rng.uniform(-road_half, road_half), z, vx, 0.0, _cross_range(z)))
    return actors


def _cars(rng: np.random.Generator, road_half: float) -> list[Actor]:
    actors: list[Actor] = []
    lane = road_half / 2.0
    for _ in range(int(rng.integers(0, 5))):  # cars
        mode = rng.choice(["oncoming", "ahead", "parked"], p=[0.4, 0.35, 0.25])
        z = _depth(rng, 6.0, 80.0)
        if mode == "oncoming":
            x, vz, facing, moving = -lane + rng.uniform(-0.3, 0.3), -rng.uniform(6.0, 14.0), 1, True
        elif mode == "ahead":
            x, vz, facing, moving = lane + rng.uniform(-0.3, 0.3), rng.uniform(3.0, 10.0), -1, True
        else:
            side = rng.choice([-1, 1])
            x, vz, facing, moving = side * (road_half - 1.1), 0.0, int(rng.choice([-1, 1])), False
        paint = tuple(float(v) for v in rng.uniform(0.04, 0.5) * rng.uniform(0.4, 1.0, size=3))
        actors.append(
            Actor(
                kind="car",
                cls=1,
                x=x,
                z=z,
                vx=0.0,
                vz=vz,
                size=rng.uniform(1.4, 1.7),
                color=paint,
                warmth=rng.uniform(0.7, 1.0) if moving else rng.uniform(0.0, 0.15),
                phase=0.0,
                facing=facing,
                x_range=(-1e3, 1e3),
                z_range=(-20.0, 110.0),
                lamp_on=moving or rng.random() < 0.1,
            )
        )
    return actors


def _bicycles(rng: np.random.Generator, road_half: float) -> list[Actor]:
    """Bicycles, mostly ridden across the road; a rider is an actor of its own."""
    actors: list[Actor] = []
    for _ in range(int(rng.integers(0, 3))):  # bicycles, mostly ridden across the road
        z = _depth(rng, 5.0, 45.0)
        ridden = rng.random() < 0.8
        if ridden:
            x, vx = rng.uniform(-road_half, road_half), rng.choice([-1, 1]) * rng.uniform(3.0, 6.0)
        else:
            x, vx = rng.choice([-1, 1]) * (road_half + rng.uniform(0.3, 1.0)), 0.0
        facing = 1 if vx >= 0 or (not ridden and rng.random() < 0.5) else -1
        frame = tuple(float(v) for v in rng.uniform(0.05, 0.4, size=3))
        bike = Actor(
            kind="bicycle",
            cls=2,
            x=x,
            z=z,
            vx=vx,
            vz=0.0,
            size=rng.uniform(0.9, 1.1),
            color=frame,
            warmth=0.8 if ridden else 0.0,
            phase=rng.uniform(0, 2 * math.pi),
            facing=facing,
            x_range=_cross_range(z),
            z_range=(-10.0, 90.0),
            lamp_on=ridden and rng.random() < 0.6,
        )
        actors.append(bike)
        if ridden:  # a hair nearer than the bike so it is drawn over it
            actors.append(
                Actor(
                    kind="rider",
                    cls=0,
                    x=x,
                    z=z - 0.05,
                    vx=vx,
                    vz=0.0,
                    size=rng.uniform(1.55, 1.9),
                    color=_clothes(rng),
                    warmth=rng.uniform(0.25, 0.6),
                    phase=bike.phase,
                    facing=facing,
                    x_range=bike.x_range,
                    z_range=(-10.05, 89.95),
                )
            )
    return actors


def _depth(rng: np.random.Generator, near: float, far: float) -> float:
    """Depths skewed towards the camera (median at about a third of the range), so most
    objects are big enough to learn from while far, tiny ones still occur."""
    return near + (far - near) * rng.random() ** 1.6


def _dog(rng, x, z, vx, vz, x_range) -> Actor:
    fur = tuple(float(v) for v in rng.uniform(0.05, 0.55) * rng.uniform(0.6, 1.0, size=3))
    return Actor(
        kind="dog",
        cls=3,
        x=x,
        z=z,
        vx=vx,
        vz=vz,
        size=rng.uniform(0.4, 0.75),
        color=fur,
        warmth=rng.uniform(0.35, 0.6),
        phase=rng.uniform(0, 2 * math.pi),
        facing=1 if vx >= 0 else -1,
        x_range=x_range,
        z_range=(-10.0, 90.0),
    )
