"""Scene layout for the synthetic night road: camera, ground, buildings, lamps and actors.

A scene is sampled once from a seed and is then a pure function of time: every actor
moves at constant velocity and wraps around outside the view, so a sequence of frames
shows smooth motion. Actors are drawn as flat "billboards" standing on the ground plane
at their depth, built from a few polygons in metres (u to the right, v up from the feet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ivtuning_ros.data.conditions import Condition

SYNTH_CLASSES: tuple[str, ...] = ("person", "car", "bicycle", "dog")
# Semantic-mask ids: 0 background (sky, buildings, pavement, poles), 1 road, and the
# detection classes shifted by 2 (person 2, car 3, bicycle 4, dog 5); 255 = ignore
# (objects too small or too occluded to be labelled as boxes).
SEG_CLASSES: tuple[str, ...] = ("background", "road", "person", "car", "bicycle", "dog")
SEG_OFFSET = 2
CLUTTER = -1  # class id of poles, trees, cabinets: drawn and occluding, never labelled
BODY_C = 36.0  # core body temperature that skin and fur relax towards

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

    @property
    def lane(self) -> float:
        return self.road_half / 2.0


@dataclass(frozen=True)
class Primitive:
    """A filled polygon (thickness 0) or a polyline, in metres relative to the actor."""

    points: np.ndarray  # (N, 2) u, v
    temp_c: float
    albedo: tuple[float, float, float]
    emission: tuple[float, float, float] = (0.0, 0.0, 0.0)
    thickness: float = 0.0


def sample_scene(rng: np.random.Generator, size: tuple[int, int], cond: Condition) -> Scene:
    """Draw a random road layout; `size` is (width, height) in pixels."""
    w, h = size
    cam = Camera(
        width=w,
        height=h,
        focal=w * rng.uniform(0.85, 1.1),
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
        side, distance, edges, heights, colors.astype(np.float32), int(rng.integers(1e9)),
        windows=layout != "rural", temp_offset=-1.0 if layout == "rural" else 1.5,
    )  # fmt: skip


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
        out.append(
            Actor("tree", CLUTTER, float(x), rng.uniform(3.0, 90.0), 0.0, 0.0,
                  rng.uniform(4.0, 9.0), green, 0.0, 0.0, int(side), (-1e3, 1e3), (-1e3, 1e3))
        )  # fmt: skip
    for _ in range(int(rng.integers(0, 3))):
        side = rng.choice([-1, 1])
        x = side * (road_half + rng.uniform(0.3, sidewalk))
        grey = tuple(float(v) for v in rng.uniform(0.1, 0.4) * np.ones(3))
        out.append(
            Actor("cabinet", CLUTTER, float(x), rng.uniform(4.0, 60.0), 0.0, 0.0,
                  rng.uniform(0.9, 1.5), grey, rng.uniform(0.0, 1.0), 0.0, int(side),
                  (-1e3, 1e3), (-1e3, 1e3))
        )  # fmt: skip
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
                    "pole",
                    CLUTTER,
                    x_pole,
                    z,
                    0.0,
                    0.0,
                    7.0,
                    (0.35, 0.35, 0.35),
                    0.0,
                    0.0,
                    side,
                    (-1e3, 1e3),
                    (-1e3, 1e3),
                    on,
                )
            )
            z += spacing
    return lamps, poles


def _sample_actors(rng: np.random.Generator, road_half: float, sidewalk: float) -> list[Actor]:
    actors: list[Actor] = []
    lane = road_half / 2.0

    def cross_range(z: float) -> tuple[float, float]:
        half = z * 0.75 + 4.0  # beyond the widest field of view: wraps unseen
        return (-half, half)

    def clothes() -> tuple[float, float, float]:
        base = rng.uniform(0.03, 0.5)
        tint = rng.uniform(0.5, 1.0, size=3)
        return tuple(float(v) for v in base * tint)

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
            "person",
            0,
            x,
            z,
            vx,
            vz,
            height,
            clothes(),
            rng.uniform(0.25, 0.6),
            rng.uniform(0, 2 * math.pi),
            facing,
            cross_range(z),
            (-10.0, 90.0),
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
                    cross_range(z),
                )
            )
    for _ in range(int(rng.integers(0, 2)) if rng.random() < 0.3 else 0):  # stray dogs
        z = _depth(rng, 4.0, 40.0)
        vx = rng.choice([-1, 1]) * rng.uniform(0.5, 2.5) if rng.random() < 0.7 else 0.0
        actors.append(_dog(rng, rng.uniform(-road_half, road_half), z, vx, 0.0, cross_range(z)))
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
                "car",
                1,
                x,
                z,
                0.0,
                vz,
                rng.uniform(1.4, 1.7),
                paint,
                rng.uniform(0.7, 1.0) if moving else rng.uniform(0.0, 0.15),
                0.0,
                facing,
                (-1e3, 1e3),
                (-20.0, 110.0),
                moving or rng.random() < 0.1,
            )
        )
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
            "bicycle",
            2,
            x,
            z,
            vx,
            0.0,
            rng.uniform(0.9, 1.1),
            frame,
            0.8 if ridden else 0.0,
            rng.uniform(0, 2 * math.pi),
            facing,
            cross_range(z),
            (-10.0, 90.0),
            ridden and rng.random() < 0.6,
        )
        actors.append(bike)
        if ridden:  # a hair nearer than the bike so it is drawn over it
            actors.append(
                Actor(
                    "rider",
                    0,
                    x,
                    z - 0.05,
                    vx,
                    0.0,
                    rng.uniform(1.55, 1.9),
                    clothes(),
                    rng.uniform(0.25, 0.6),
                    bike.phase,
                    facing,
                    bike.x_range,
                    (-10.05, 89.95),
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
        "dog",
        3,
        x,
        z,
        vx,
        vz,
        rng.uniform(0.4, 0.75),
        fur,
        rng.uniform(0.35, 0.6),
        rng.uniform(0, 2 * math.pi),
        1 if vx >= 0 else -1,
        x_range,
        (-10.0, 90.0),
    )


# ----------------------------------------------------------------------------- shapes


def _ellipse(cu: float, cv: float, ru: float, rv: float, n: int = 16) -> np.ndarray:
    a = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return np.stack([cu + ru * np.cos(a), cv + rv * np.sin(a)], axis=1)


def _limb(p0: tuple[float, float], p1: tuple[float, float], width: float) -> np.ndarray:
    (u0, v0), (u1, v1) = p0, p1
    du, dv = u1 - u0, v1 - v0
    n = math.hypot(du, dv) or 1.0
    ou, ov = -dv / n * width / 2, du / n * width / 2
    return np.array(
        [[u0 + ou, v0 + ov], [u1 + ou, v1 + ov], [u1 - ou, v1 - ov], [u0 - ou, v0 - ov]]
    )


def _rect(u0: float, v0: float, u1: float, v1: float) -> np.ndarray:
    return np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], dtype=np.float64)


def actor_primitives(a: Actor, t: float, ambient_c: float) -> list[Primitive]:
    """Polygons of one actor at time t, with surface temperatures for that ambient."""
    if a.kind == "pole":
        return _pole(a, ambient_c)
    if a.kind == "tree":
        return _tree(a, ambient_c)
    if a.kind == "cabinet":
        return [
            Primitive(_rect(-0.35, 0.0, 0.35, a.size), ambient_c + 1.0 + 7.0 * a.warmth, a.color)
        ]
    if a.kind == "car":
        return _car(a, ambient_c)
    speed = math.hypot(a.vx, a.vz)
    if a.kind == "bicycle":
        return _bicycle(a, t, speed, ambient_c)
    if a.kind == "dog":
        return _dog_shape(a, t, speed, ambient_c)
    return _person(a, t, speed, ambient_c)


def _skin(ambient_c: float, insulation: float) -> float:
    """Surface temperature between ambient and the body core."""
    return ambient_c + (BODY_C - ambient_c) * (1.0 - insulation)


def _person(a: Actor, t: float, speed: float, amb: float) -> list[Primitive]:
    h, s = a.size, a.facing
    side_view = 1.0 if abs(a.vx) >= abs(a.vz) and speed > 0 else 0.3
    phase = a.phase + t * speed * 2.2
    swing = 0.45 * math.sin(phase) * side_view * min(speed, 1.5) / 1.5
    shoulder = h * (0.24 - 0.09 * side_view)
    cloth = _skin(amb, 0.35 + 0.5 * a.warmth)
    legs = _skin(amb, 0.45 + 0.45 * a.warmth)
    face = _skin(amb, 0.15)
    dark = tuple(0.6 * c for c in a.color)
    trousers = (0.08, 0.08, 0.1) if a.warmth > 0.4 else dark
    if a.kind == "rider":
        hip = (-0.12 * s, 0.92)
        crank = (0.0, 0.32)
        pedal = [
            (
                crank[0] + 0.17 * math.cos(phase + k * math.pi),
                crank[1] + 0.17 * math.sin(phase + k * math.pi),
            )
            for k in (0, 1)
        ]
        knee = [(hip[0] + 0.3 * s, (hip[1] + p[1]) / 2 + 0.15) for p in pedal]
        torso_top = (hip[0] + 0.22 * s, hip[1] + 0.3 * h)
        prims = [Primitive(_limb(hip, k, 0.11), legs, trousers) for k in knee]
        prims += [
            Primitive(_limb(k, p, 0.09), legs, trousers) for k, p in zip(knee, pedal, strict=True)
        ]
        prims.append(Primitive(_limb(hip, torso_top, 0.16 * h * 0.9), cloth, a.color))
        prims.append(Primitive(_limb(torso_top, (0.45 * s, 1.0), 0.06 * h), cloth, a.color))
        head = (torso_top[0] + 0.05 * s, torso_top[1] + 0.09 * h)
        prims.append(Primitive(_ellipse(*head, 0.055 * h, 0.065 * h), face, (0.45, 0.33, 0.25)))
        return prims
    hip_v, sh_v = 0.5 * h, 0.81 * h
    prims = []
    for k in (-1, 1):  # legs, far one first
        hip_u = k * 0.05 * h * (1 - side_view)
        foot = (hip_u + k * swing * 0.4 * h * s, 0.0)
        prims.append(Primitive(_limb((hip_u, hip_v), foot, 0.075 * h), legs, trousers))
    prims.append(
        Primitive(
            np.array(
                [
                    [-shoulder / 2, sh_v],
                    [shoulder / 2, sh_v],
                    [shoulder * 0.4, hip_v - 0.03 * h],
                    [-shoulder * 0.4, hip_v - 0.03 * h],
                ]
            ),
            cloth,
            a.color,
        )
    )
    for k in (-1, 1):  # arms swing opposite to the legs
        sh_u = k * shoulder * 0.45 * (1 - side_view)
        hand = (sh_u - k * swing * 0.25 * h * s + k * 0.02 * h, 0.45 * h)
        prims.append(Primitive(_limb((sh_u, sh_v - 0.02 * h), hand, 0.055 * h), cloth, a.color))
    prims.append(Primitive(_ellipse(0.0, 0.925 * h, 0.055 * h, 0.07 * h), face, (0.45, 0.33, 0.25)))
    return prims


def _dog_shape(a: Actor, t: float, speed: float, amb: float) -> list[Primitive]:
    h, s = a.size, a.facing
    length = 1.3 * h
    phase = a.phase + t * (speed * 4.0)
    amp = 0.35 * min(speed, 2.0) / 2.0
    fur = _skin(amb, a.warmth)
    head_t = _skin(amb, a.warmth * 0.6)
    prims = []
    for k, du in enumerate((-0.3, -0.22, 0.22, 0.3)):  # four legs, alternating gait
        top = (du * length * s, 0.58 * h)
        foot = (top[0] + amp * h * math.sin(phase + k * math.pi / 2) * s, 0.0)
        prims.append(Primitive(_limb(top, foot, 0.09 * h), fur, a.color))
    prims.append(Primitive(_ellipse(0.0, 0.62 * h, 0.38 * length, 0.17 * h), fur, a.color))
    prims.append(
        Primitive(
            _limb((0.36 * length * s, 0.7 * h), (0.46 * length * s, 0.88 * h), 0.13 * h),
            fur,
            a.color,
        )
    )
    prims.append(Primitive(_ellipse(0.5 * length * s, 0.9 * h, 0.12 * h, 0.1 * h), head_t, a.color))
    prims.append(
        Primitive(
            _ellipse(0.6 * length * s, 0.86 * h, 0.08 * h, 0.05 * h),
            head_t,
            tuple(0.5 * c for c in a.color),
        )
    )
    prims.append(
        Primitive(
            _limb((-0.36 * length * s, 0.68 * h), (-0.52 * length * s, 0.8 * h), 0.05 * h),
            fur,
            a.color,
        )
    )
    return prims


def _car(a: Actor, amb: float) -> list[Primitive]:
    h = a.size
    w = 1.8 * h / 1.5
    front = a.facing > 0
    engine = a.warmth
    body_t = amb + 1.0 + 3.0 * engine
    tyre_t = amb + 0.5 + 14.0 * engine
    glass_t = amb - 6.0
    glass = (0.03, 0.035, 0.045)
    prims = [
        Primitive(_rect(-0.47 * w, 0.0, -0.27 * w, 0.36), tyre_t, (0.03, 0.03, 0.03)),
        Primitive(_rect(0.27 * w, 0.0, 0.47 * w, 0.36), tyre_t, (0.03, 0.03, 0.03)),
        Primitive(
            np.array(
                [
                    [-0.5 * w, 0.2],
                    [0.5 * w, 0.2],
                    [0.5 * w, 0.6 * h],
                    [0.46 * w, 0.64 * h],
                    [-0.46 * w, 0.64 * h],
                    [-0.5 * w, 0.6 * h],
                ]
            ),
            body_t,
            a.color,
        ),
        Primitive(
            np.array([[-0.44 * w, 0.63 * h], [0.44 * w, 0.63 * h], [0.34 * w, h], [-0.34 * w, h]]),
            body_t,
            a.color,
        ),
        Primitive(
            np.array(
                [
                    [-0.39 * w, 0.66 * h],
                    [0.39 * w, 0.66 * h],
                    [0.31 * w, 0.96 * h],
                    [-0.31 * w, 0.96 * h],
                ]
            ),
            glass_t,
            glass,
        ),
        Primitive(_rect(-0.1 * w, 0.3, 0.1 * w, 0.3 + 0.08 * h), body_t, (0.6, 0.6, 0.55)),
    ]
    lamp_v = 0.5 * h
    if front:
        prims.append(
            Primitive(
                _rect(-0.22 * w, 0.34 * h, 0.22 * w, 0.46 * h),
                amb + 4.0 + 35.0 * engine,
                (0.05, 0.05, 0.05),
            )
        )
        light = (7.0, 6.8, 6.0) if a.lamp_on else (0.0, 0.0, 0.0)
        for k in (-1, 1):
            prims.append(
                Primitive(
                    _ellipse(k * 0.36 * w, lamp_v, 0.09 * w, 0.045 * h),
                    amb + 8.0 * engine,
                    (0.7, 0.7, 0.7),
                    light,
                )
            )
    else:
        light = (2.5, 0.12, 0.06) if a.lamp_on else (0.0, 0.0, 0.0)
        for k in (-1, 1):
            prims.append(
                Primitive(
                    _rect(
                        k * 0.42 * w - 0.06 * w,
                        lamp_v - 0.04 * h,
                        k * 0.42 * w + 0.06 * w,
                        lamp_v + 0.05 * h,
                    ),
                    amb + 2.0 * engine,
                    (0.35, 0.02, 0.02),
                    light,
                )
            )
        prims.append(
            Primitive(_ellipse(0.3 * w, 0.22, 0.05, 0.04), amb + 70.0 * engine, (0.05, 0.05, 0.05))
        )
    return prims


def _bicycle(a: Actor, t: float, speed: float, amb: float) -> list[Primitive]:
    s, k = a.facing, a.size
    r = 0.34 * k
    rear, front = (-0.52 * k * s, r), (0.52 * k * s, r)
    crank = (0.0, 0.32 * k)
    seat, head = (-0.15 * k * s, 0.92 * k), (0.42 * k * s, 0.95 * k)
    tyre_t = amb + 2.5 * a.warmth
    frame_t = amb + 0.3
    tyre = (0.04, 0.04, 0.04)
    th = 0.045 * k
    prims = [
        Primitive(_ellipse(*c, r, r, 24), tyre_t, tyre, thickness=0.06 * k) for c in (rear, front)
    ]
    for p0, p1 in (
        (rear, seat),
        (seat, crank),
        (crank, rear),
        (seat, head),
        (head, crank),
        (head, front),
    ):
        prims.append(Primitive(np.array([p0, p1]), frame_t, a.color, thickness=th))
    prims.append(
        Primitive(
            np.array([head, (head[0] - 0.1 * s, head[1] + 0.1 * k)]),
            frame_t,
            (0.1, 0.1, 0.1),
            thickness=th,
        )
    )
    prims.append(
        Primitive(
            _rect(seat[0] - 0.1, seat[1], seat[0] + 0.1, seat[1] + 0.05),
            frame_t,
            (0.05, 0.05, 0.05),
        )
    )
    if a.lamp_on:
        prims.append(
            Primitive(
                _ellipse(head[0] + 0.06 * s, head[1] - 0.1, 0.05, 0.04),
                amb + 1,
                (0.8, 0.8, 0.8),
                (4.0, 4.0, 3.6),
            )
        )
    return prims


def _pole(a: Actor, amb: float) -> list[Primitive]:
    s = a.facing
    lamp_t = amb + 30.0 if a.lamp_on else amb
    prims = [
        Primitive(_rect(-0.09, 0.0, 0.09, a.size), amb + 0.5, a.color),
        Primitive(np.array([[0.0, a.size], [-s * 1.6, a.size]]), amb + 0.5, a.color, thickness=0.1),
        Primitive(
            _ellipse(-s * 1.6, a.size - 0.08, 0.35, 0.1),
            lamp_t,
            (0.5, 0.5, 0.5),
            (9.0, 7.0, 4.0) if a.lamp_on else (0.0, 0.0, 0.0),
        ),
    ]
    return prims


def _tree(a: Actor, amb: float) -> list[Primitive]:
    h = a.size
    trunk = (0.08, 0.06, 0.04)
    return [
        Primitive(_rect(-0.12, 0.0, 0.12, 0.45 * h), amb + 0.5, trunk),
        Primitive(_ellipse(0.0, 0.65 * h, 0.28 * h, 0.36 * h, 20), amb - 1.5, a.color),
    ]


def to_pixels(points: np.ndarray, cam: Camera, x: float, z: float) -> np.ndarray:
    """Actor-local metres -> image pixels (x, y), as float."""
    scale = cam.focal / z
    px = cam.x_of(x, z) + points[:, 0] * scale
    py = cam.ground_y(z) - points[:, 1] * scale
    return np.stack([px, py], axis=1)


def draw_primitive(canvas: np.ndarray, prim: Primitive, pix: np.ndarray, value: int, scale: float):
    """Paint one primitive's pixels with `value` (sub-pixel precise polygons)."""
    pts = np.round(pix * 16).astype(np.int32)  # 4 fractional bits
    if prim.thickness > 0:
        thick = max(1, round(prim.thickness * scale))
        cv2.polylines(canvas, [pts], len(pts) > 2, int(value), thick, cv2.LINE_8, 4)
    else:
        cv2.fillPoly(canvas, [pts], int(value), cv2.LINE_8, 4)
