"""What the actors look like: people, riders, dogs, cars, bicycles and roadside clutter.

Each actor is a flat "billboard" standing on the ground plane at its depth, built from a
few polygons in metres (u to the right, v up from the feet), each with a surface
temperature (thermal) and an albedo / emission (visible light). Walking gaits and
pedalling animate with time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ivtuning_ros.data.scene import Actor, Camera

BODY_C = 36.0  # core body temperature that skin and fur relax towards


@dataclass(frozen=True)
class Primitive:
    """A filled polygon (thickness 0) or a polyline, in metres relative to the actor."""

    points: np.ndarray  # (N, 2) u, v
    temp_c: float
    albedo: tuple[float, float, float]
    emission: tuple[float, float, float] = (0.0, 0.0, 0.0)
    thickness: float = 0.0


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
    """A car seen from the front (facing > 0) or the rear; a running engine warms the
    body, tyres and grille or exhaust, and lit lamps glow."""
    h = a.size
    w = 1.8 * h / 1.5
    engine = a.warmth
    body_t = amb + 1.0 + 3.0 * engine
    tyre_t = amb + 0.5 + 14.0 * engine
    glass_t = amb - 6.0
    glass = (0.03, 0.035, 0.045)
    lower = np.array([[-0.5 * w, 0.2], [0.5 * w, 0.2], [0.5 * w, 0.6 * h], [0.46 * w, 0.64 * h],
                      [-0.46 * w, 0.64 * h], [-0.5 * w, 0.6 * h]])  # fmt: skip
    cabin = np.array([[-0.44 * w, 0.63 * h], [0.44 * w, 0.63 * h], [0.34 * w, h], [-0.34 * w, h]])
    window = np.array([[-0.39 * w, 0.66 * h], [0.39 * w, 0.66 * h], [0.31 * w, 0.96 * h],
                       [-0.31 * w, 0.96 * h]])  # fmt: skip
    prims = [
        Primitive(_rect(-0.47 * w, 0.0, -0.27 * w, 0.36), tyre_t, (0.03, 0.03, 0.03)),
        Primitive(_rect(0.27 * w, 0.0, 0.47 * w, 0.36), tyre_t, (0.03, 0.03, 0.03)),
        Primitive(lower, body_t, a.color),
        Primitive(cabin, body_t, a.color),
        Primitive(window, glass_t, glass),
        Primitive(_rect(-0.1 * w, 0.3, 0.1 * w, 0.3 + 0.08 * h), body_t, (0.6, 0.6, 0.55)),
    ]
    return prims + (_car_front(a, amb, w, h) if a.facing > 0 else _car_rear(a, amb, w, h))


def _car_front(a: Actor, amb: float, w: float, h: float) -> list[Primitive]:
    """The warm grille and two headlamps."""
    engine, lamp_v = a.warmth, 0.5 * h
    grille = _rect(-0.22 * w, 0.34 * h, 0.22 * w, 0.46 * h)
    prims = [Primitive(grille, amb + 4.0 + 35.0 * engine, (0.05, 0.05, 0.05))]
    light = (7.0, 6.8, 6.0) if a.lamp_on else (0.0, 0.0, 0.0)
    for k in (-1, 1):
        lamp = _ellipse(k * 0.36 * w, lamp_v, 0.09 * w, 0.045 * h)
        prims.append(Primitive(lamp, amb + 8.0 * engine, (0.7, 0.7, 0.7), light))
    return prims


def _car_rear(a: Actor, amb: float, w: float, h: float) -> list[Primitive]:
    """Two tail lamps and the hot exhaust."""
    engine, lamp_v = a.warmth, 0.5 * h
    light = (2.5, 0.12, 0.06) if a.lamp_on else (0.0, 0.0, 0.0)
    prims = []
    for k in (-1, 1):
        x = k * 0.42 * w
        lamp = _rect(x - 0.06 * w, lamp_v - 0.04 * h, x + 0.06 * w, lamp_v + 0.05 * h)
        prims.append(Primitive(lamp, amb + 2.0 * engine, (0.35, 0.02, 0.02), light))
    exhaust = _ellipse(0.3 * w, 0.22, 0.05, 0.04)
    prims.append(Primitive(exhaust, amb + 70.0 * engine, (0.05, 0.05, 0.05)))
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
