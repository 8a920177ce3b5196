"""Image formation for the synthetic night scenes: one RGB frame and one thermal frame.

RGB: albedo x illumination (ambient sky glow, street-lamp pools, headlight beams) plus
emitters (lamps, head/tail lights, lit windows), then fog by Koschmieder's law
I = J*t + A*(1-t) with t = exp(-beta*d), halos of light scattered by the fog, lens bloom,
rain streaks and wet-road reflections, and a dark, noisy, gamma-encoded sensor.
Thermal: surface temperatures (warm bodies, engines, tyres, exhausts, a cold sky), the
much weaker LWIR fog extinction, optical blur, vignetting, column stripes, noise, then
8-bit AGC or 16-bit TLinear counts (centikelvin).

The static background (ground, buildings, lamp light on them) is computed once per
scene; each frame adds the moving actors, so sequences render fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ivtuning_ros.data.conditions import Condition
from ivtuning_ros.data.scene import CLUTTER, SEG_OFFSET, Scene
from ivtuning_ros.data.shapes import actor_primitives, draw_primitive, to_pixels
from ivtuning_ros.types import RGBTSample

SKY_DEPTH = 2000.0  # metres: the sky counts as very far away for both fog models
EGO_BEAM = 60.0  # ego low-beam intensity
CAR_BEAM = 60.0  # oncoming cars' low beams

# Background surface kinds (per pixel)
SKY, ROAD, SIDEWALK, VERGE, WALL, OBJECT = range(6)


@dataclass
class _Static:
    """Per-scene, time-independent layers (background only)."""

    kind: np.ndarray  # (H, W) uint8
    depth: np.ndarray  # (H, W) float32 z in metres
    albedo: np.ndarray  # (H, W, 3) float32
    emission: np.ndarray  # (H, W, 3) float32
    temp: np.ndarray  # (H, W) float32 degrees C
    light: np.ndarray  # (H, W, 3) float32 illumination of the background
    wx: np.ndarray  # (H, W) float32 world x of each background pixel, m
    wy: np.ndarray  # (H, W) float32 world height of each background pixel, m
    ray: np.ndarray  # (H, W) float32 distance per unit depth along each pixel's ray
    fpn: np.ndarray  # (W,) float32 column offsets of the thermal sensor, degrees C
    vignette: np.ndarray  # (H, W) float32, 0 at the centre, 1 in the corners
    fog_grid: np.ndarray  # low-resolution random field for patchy fog


class FrameRenderer:
    """Renders frames of one scene under one condition."""

    def __init__(self, scene: Scene, cond: Condition) -> None:
        self.scene = scene
        self.cond = cond
        self.static = _build_static(scene, cond)

    def render(self, t: float, rng: np.random.Generator, thermal_bits: int = 8) -> RGBTSample:
        sc, cond, st = self.scene, self.cond, self.static
        cam = sc.camera
        prim_map, prims, actors, full_area, windows = self._draw_actors(t)
        n = len(prims)
        # Look-up tables indexed by primitive id (0 = background).
        temp_lut = np.array([0.0] + [p[0].temp_c for p in prims], np.float32)
        alb_lut = np.array([(0, 0, 0)] + [p[0].albedo for p in prims], np.float32)
        emi_lut = np.array([(0, 0, 0)] + [p[0].emission for p in prims], np.float32)
        z_lut = np.array([0.0] + [p[1] for p in prims], np.float32)
        owner_lut = np.array([0] + [p[2] + 1 for p in prims], np.int32)
        obj = prim_map > 0
        ys, xs = np.nonzero(obj)
        pid = prim_map[ys, xs]

        depth = st.depth.copy()
        depth[ys, xs] = z_lut[pid]
        albedo = st.albedo.copy()
        albedo[ys, xs] = alb_lut[pid]
        emission = st.emission.copy()
        emission[ys, xs] = emi_lut[pid]
        temp = st.temp.copy()
        temp[ys, xs] = temp_lut[pid]
        light = st.light.copy()
        wx, wy = st.wx.copy(), st.wy.copy()
        if n:
            ox, oy = _world(cam, xs.astype(np.float32), ys.astype(np.float32), depth[ys, xs])
            wx[ys, xs], wy[ys, xs] = ox, oy
            light[ys, xs] = _object_light(sc, cond, ox, oy, depth[ys, xs])
        is_ground = (st.kind != WALL) & ~obj
        for x, z in self._oncoming_beams(t):
            b = _beam(wx, wy, depth, is_ground, (x, 0.6, z), -1.0, CAR_BEAM)
            light += b[..., None] * np.float32([1.0, 0.97, 0.9])

        beta = self._beta(t)
        dist = depth * st.ray
        rgb = _rgb_image(cond, albedo, light, emission, dist, beta, st.kind, rng)
        thermal = _thermal_image(sc, cond, temp, dist, st, rng, thermal_bits)

        owner = owner_lut[prim_map]
        boxes, labels, ids, mask, saliency = _annotate(
            sc, st.kind, owner, actors, full_area, windows
        )
        return RGBTSample(rgb, thermal, "", boxes, labels, mask, saliency, instance_ids=ids)

    # ------------------------------------------------------------------ actors

    def _draw_actors(self, t: float):
        """Painter's algorithm, far to near, into one map of primitive ids."""
        sc = self.scene
        cam = sc.camera
        prim_map = np.zeros((cam.height, cam.width), np.int32)
        prims: list = []  # (Primitive, z, actor index)
        placed = []
        for i, a in enumerate(sc.actors):
            x, z = a.position(t)
            if z < 1.0:
                continue
            facade = sc.facades[0 if x < 0 else 1]
            if abs(x) > facade.distance - 0.3:  # never walk inside a building
                continue
            placed.append((z, i, x))
        placed.sort(key=lambda p: -p[0])
        actors, full_area, windows = [], {}, {}
        for z, i, x in placed:
            a = sc.actors[i]
            scale = cam.focal / z
            first = len(prims) + 1
            box = [np.inf, np.inf, -np.inf, -np.inf]
            for prim in actor_primitives(a, t, sc.ambient_c):
                pix = to_pixels(prim.points, cam, x, z)
                prims.append((prim, z, i))
                draw_primitive(prim_map, prim, pix, len(prims), scale)
                pad = prim.thickness * scale
                box = [
                    min(box[0], pix[:, 0].min() - pad),
                    min(box[1], pix[:, 1].min() - pad),
                    max(box[2], pix[:, 0].max() + pad),
                    max(box[3], pix[:, 1].max() + pad),
                ]
            x0, y0 = max(int(box[0]) - 1, 0), max(int(box[1]) - 1, 0)
            x1, y1 = min(int(box[2]) + 2, cam.width), min(int(box[3]) + 2, cam.height)
            if a.cls == CLUTTER or x1 <= x0 or y1 <= y0:
                continue
            win = prim_map[y0:y1, x0:x1]
            full_area[i] = int(((win >= first) & (win <= len(prims))).sum())
            windows[i] = (x0, y0, x1, y1)
            actors.append(i)
        return prim_map, prims, actors, full_area, windows

    def _oncoming_beams(self, t: float) -> list[tuple[float, float]]:
        beams = []
        for a in self.scene.actors:
            if a.kind == "car" and a.facing > 0 and a.lamp_on:
                x, z = a.position(t)
                if 2.0 < z < 80.0:
                    beams.append((x, z))
        return sorted(beams, key=lambda b: b[1])[:2]

    def _beta(self, t: float) -> np.ndarray | float:
        cond, st = self.cond, self.static
        if cond.fog_model == "homogeneous":
            return cond.fog_beta
        h, w = st.depth.shape
        g = st.fog_grid
        drift = 0.05 * t  # fog banks drift slowly sideways
        shift = np.float32([[1, 0, -drift * g.shape[1] / 4], [0, 1, 0]])
        moved = cv2.warpAffine(g, shift, (g.shape[1], g.shape[0]), borderMode=cv2.BORDER_WRAP)
        field = cv2.resize(moved[:, : g.shape[1] // 2], (w, h), interpolation=cv2.INTER_CUBIC)
        return cond.fog_beta * np.clip(1.0 + cond.fog_patchiness * field, 0.05, None)


# ---------------------------------------------------------------------- background


def _draw_facade(f, cam, xx, yy, tex, amb: float, layers: tuple) -> None:
    """Paint one side's building facades (and their lit windows) into the static layers
    (kind, depth, albedo, temperature, normal, emission), in place."""
    kind, depth, albedo, temp, normal, emission = layers
    h, w = kind.shape
    cols = (xx[0] - cam.cx) * f.side > 1.0
    zw = np.full(w, np.inf, np.float32)
    zw[cols] = cam.focal * f.distance / np.abs(xx[0][cols] - cam.cx)
    idx = np.searchsorted(f.z_edges, zw) - 1
    valid = cols & (idx >= 0) & (idx < len(f.heights))
    idx = np.clip(idx, 0, len(f.heights) - 1)
    hb = np.where(valid, f.heights[idx], 0.0)
    top = cam.horizon - cam.focal * (hb - cam.height_m) / zw
    bottom = cam.horizon + cam.focal * cam.height_m / zw
    on = valid & (hb > 0)
    wall = on[None, :] & (yy >= top[None, :]) & (yy < bottom[None, :])
    zmap = np.broadcast_to(np.minimum(zw, SKY_DEPTH)[None, :], (h, w))
    ymap = cam.height_m - (yy - cam.horizon) * zmap / cam.focal
    kind[wall] = WALL
    depth[wall] = zmap[wall]
    albedo[wall] = np.broadcast_to(f.colors[idx][None], (h, w, 3))[wall] * tex[wall][:, None]
    temp[wall] = amb + f.temp_offset
    normal[wall] = (-f.side, 0.0, 0.0)
    if not f.windows:
        return
    # Windows: a grid on the facade, some lit (warm light, warm glass).
    u, v = zmap % 3.0, ymap % 3.2
    iu, iv = np.floor(zmap / 3.0).astype(np.int64), np.floor(ymap / 3.2).astype(np.int64)
    win = wall & (u > 0.8) & (u < 2.2) & (v > 1.0) & (v < 2.4) & (ymap > 2.0)
    win &= ymap < np.broadcast_to(hb[None, :], (h, w)) - 0.8
    lit = win & (((iu * 73856093) ^ (iv * 19349663) ^ f.lit_seed) % 100 < 22)
    albedo[win] = 0.03
    temp[win] = amb - 3.0
    emission[lit] = (0.10, 0.075, 0.045)
    temp[lit] = amb + 4.0


def _build_static(sc: Scene, cond: Condition) -> _Static:
    cam = sc.camera
    h, w = cam.height, cam.width
    rng = np.random.default_rng(sc.fpn_seed)
    yy = np.arange(h, dtype=np.float32)[:, None] + 0.5
    xx = np.arange(w, dtype=np.float32)[None, :] + 0.5
    dy = yy - cam.horizon
    with np.errstate(divide="ignore"):
        zg = np.where(dy > 0.5, cam.focal * cam.height_m / np.maximum(dy, 1e-3), SKY_DEPTH)
    zg = np.broadcast_to(np.minimum(zg, SKY_DEPTH), (h, w)).astype(np.float32)
    xg = (xx - cam.cx) * zg / cam.focal
    ax = np.abs(xg)
    kind = np.full((h, w), SKY, np.uint8)
    ground = zg < SKY_DEPTH
    kind[ground & (ax < sc.road_half)] = ROAD
    kind[ground & (ax >= sc.road_half) & (ax < sc.road_half + sc.sidewalk)] = SIDEWALK
    kind[ground & (ax >= sc.road_half + sc.sidewalk)] = VERGE
    depth = zg.copy()
    amb = sc.ambient_c
    temp = np.full((h, w), amb - 25.0, np.float32)
    albedo = np.zeros((h, w, 3), np.float32)
    emission = np.zeros((h, w, 3), np.float32)
    # (clipped: a rare deep trough of the noise would make a negative albedo -> NaN pixels)
    tex = np.maximum(1.0 + 0.25 * _smooth_noise(rng, (h, w), 3), 0.0)
    road = kind == ROAD
    albedo[road] = 0.07
    temp[road] = amb + 2.5
    marking = road & (np.abs(xg) < 0.08) & ((zg % 9.0) < 4.0)
    edge_line = road & (np.abs(ax - (sc.road_half - 0.25)) < 0.08)
    albedo[marking | edge_line] = 0.5
    temp[marking | edge_line] = amb + 3.0
    walk = kind == SIDEWALK
    albedo[walk] = 0.18
    temp[walk] = amb + 2.0
    verge = kind == VERGE
    albedo[verge] = (0.05, 0.08, 0.04)
    temp[verge] = amb - 1.0
    albedo *= tex[..., None]

    normal = np.zeros((h, w, 3), np.float32)
    normal[..., 1] = 1.0  # ground faces up
    for f in sc.facades:
        _draw_facade(f, cam, xx, yy, tex, amb, (kind, depth, albedo, temp, normal, emission))

    ray = np.sqrt(1.0 + ((xx - cam.cx) / cam.focal) ** 2 + (dy / cam.focal) ** 2).astype(np.float32)
    wx = ((xx - cam.cx) * depth / cam.focal).astype(np.float32)
    wy = np.where(kind == WALL, cam.height_m - dy * depth / cam.focal, 0.0).astype(np.float32)
    # Illumination varies slowly: computed on every other pixel, then interpolated.
    sub = (slice(None, None, 2), slice(None, None, 2))
    nrm = normal[sub]
    light = _lamp_light(
        sc, cond, wx[sub], wy[sub], depth[sub], nrm[..., 0], nrm[..., 1], nrm[..., 2]
    )
    if sc.ego_headlights:
        b = _beam(wx[sub], wy[sub], depth[sub], (kind != WALL)[sub], (0.0, 0.7, 0.0), 1.0, EGO_BEAM)
        light += b[..., None] * np.float32([1.0, 0.98, 0.92])
    light = cv2.resize(light, (w, h), interpolation=cv2.INTER_LINEAR)
    light[kind == SKY] = 0.0
    r2 = ((xx - cam.cx) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    vignette = (r2 / 2.0).astype(np.float32)
    fpn = rng.normal(0.0, 0.08, w).astype(np.float32)
    fog_grid = rng.uniform(-1.0, 1.0, (6, 16)).astype(np.float32)
    return _Static(kind, depth, albedo, emission, temp, light, wx, wy, ray, fpn, vignette, fog_grid)


def _smooth_noise(rng: np.random.Generator, hw: tuple[int, int], cell: int) -> np.ndarray:
    h, w = hw
    small = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _world(cam, xs, ys, z):
    x = (xs + 0.5 - cam.cx) * z / cam.focal
    y = cam.height_m - (ys + 0.5 - cam.horizon) * z / cam.focal
    return x, y


def _lamp_light(sc: Scene, cond: Condition, x, y, z, nx, ny, nz) -> np.ndarray:
    """Illumination (N, 3) from the ambient sky glow and every lit street lamp."""
    e = np.empty((*x.shape, 3), np.float32)
    e[:] = np.float32(cond.ambient) * np.array([0.75, 0.8, 1.0], np.float32)
    for lamp in sc.lamps:
        if not lamp.on or lamp.z > 120.0:
            continue
        lx, ly, lz = lamp.x - x, lamp.y - y, lamp.z - z
        d2 = lx * lx + ly * ly + lz * lz + 1.0
        inv_d = 1.0 / np.sqrt(d2)
        cos = (nx * lx + ny * ly + nz * lz) * inv_d
        down = np.clip(ly * inv_d, 0.0, 1.0)  # cut-off luminaire: most light straight down
        s = np.float32(cond.streetlight) * down * down * np.clip(cos * 0.85 + 0.15, 0.0, 1.0) / d2
        e += s[..., None] * np.array(lamp.color, np.float32)
    return e


def _object_light(sc, cond, x, y, z) -> np.ndarray:
    """Objects are vertical billboards facing the camera (normal towards -z)."""
    zero = np.zeros_like(x)
    light = _lamp_light(sc, cond, x, y, z, zero, zero, zero - 1.0)
    if sc.ego_headlights:
        b = _beam(x, y, z, np.zeros(x.shape, bool), (0.0, 0.7, 0.0), 1.0, EGO_BEAM)
        light += b[:, None] * np.float32([1.0, 0.98, 0.92])
    return light


def _beam(x, y, z, ground, src, direction, power) -> np.ndarray:
    """Low-beam headlight pointing along +z (direction 1) or -z (-1): a wide, flat cone
    with a sharp cut-off above the horizontal. Ground is lit at a grazing angle."""
    sx, sy, sz = src
    dz = (z - sz) * direction
    safe = np.maximum(dz, 0.5)
    ah = (x - sx) / safe
    av = (y - sy) / safe
    cutoff = np.exp(-np.clip(av, 0.0, 1.0) / 0.015)
    beam = np.exp(-0.5 * (ah / 0.4) ** 2 - 0.5 * ((av + 0.03) / 0.06) ** 2) * cutoff
    d2 = (x - sx) ** 2 + (y - sy) ** 2 + (z - sz) ** 2 + 1.0
    cos = np.where(ground, np.abs(y - sy) / np.sqrt(d2), 1.0)
    return np.where(dz > 0.3, power * beam * cos / d2, 0.0).astype(np.float32)


# ------------------------------------------------------------------------- images


def _rgb_image(cond, albedo, light, emission, dist, beta, kind, rng) -> np.ndarray:
    h, w = dist.shape
    radiance = albedo * light + emission
    t = np.exp(-np.asarray(beta, np.float32) * dist).astype(np.float32)
    air = np.array(cond.airlight, np.float32)
    img = radiance * t[..., None] + air * (1.0 - t[..., None])
    visible_lights = emission * t[..., None]
    if cond.glow > 0:  # light scattered by the fog around every source: halos
        s = 0.03 * w
        halo = _wide_blur(visible_lights, s) + 0.5 * _wide_blur(visible_lights, 3 * s)
        img += np.float32(cond.glow * 1.5) * halo
    if cond.wet_road > 0:  # lights mirrored as long streaks on the wet asphalt
        k = max(3, int(0.18 * h)) | 1
        kernel = np.zeros((k, 1), np.float32)
        kernel[k // 2 :, 0] = np.linspace(0.1, 1.0, k - k // 2)  # reaches downwards only
        streak = cv2.filter2D(visible_lights, -1, kernel / kernel.sum(), anchor=(0, k - 1))
        streak = cv2.GaussianBlur(streak, (0, 0), 1.5)
        img += np.float32(cond.wet_road * 0.5) * streak * (kind == ROAD)[..., None]
    if cond.rain > 0:
        img += _rain(cond, light, rng, (h, w))
    if cond.glare > 0:  # lens bloom, and streaks in rain
        bloom = _wide_blur(visible_lights, 0.01 * w + 1.0)
        img += np.float32(cond.glare) * bloom
        if cond.rain > 0:
            k = int(0.06 * w) | 1
            img += np.float32(cond.glare * 0.3) * cv2.blur(visible_lights, (k, 1))
    img *= np.float32(cond.exposure)
    noise = rng.standard_normal((h, w, 3), dtype=np.float32)
    sigma = np.sqrt(np.float32(cond.read_noise) ** 2 + np.float32(cond.shot_noise) * img)
    img += noise * sigma
    np.clip(img, 0.0, 1.0, out=img)
    return (np.power(img, 1.0 / 2.2) * 255.0 + 0.5).astype(np.uint8)


def _wide_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide ones run at quarter resolution (halos are smooth anyway)."""
    if sigma < 4.0:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / 4.0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _rain(cond, light, rng, hw) -> np.ndarray:
    h, w = hw
    drops = (rng.random((h, w), dtype=np.float32) < 0.004 * cond.rain).astype(np.float32)
    k = max(5, int(0.06 * h)) | 1
    kernel = np.zeros((k, k), np.float32)
    cv2.line(kernel, (k // 2 + k // 8, 0), (k // 2 - k // 8, k - 1), 1.0, 1)
    streaks = cv2.filter2D(drops, -1, kernel)
    lit = cv2.blur(light.mean(axis=2), (9, 9))
    return (streaks * (0.02 + 0.4 * lit))[..., None] * np.float32([0.9, 0.95, 1.0])


def _thermal_image(sc, cond, temp, dist, st, rng, bits) -> np.ndarray:
    amb = np.float32(sc.ambient_c)
    h, w = temp.shape
    t = temp
    if cond.thermal_contrast != 1.0:
        t = amb + (t - amb) * np.float32(cond.thermal_contrast)
    # LWIR sees through fog banks almost alike: the mean extinction, not the patches.
    tau = np.exp(-np.float32(cond.fog_beta * cond.thermal_beta_ratio) * dist)
    t = t * tau + amb * (1.0 - tau)
    # The lens and a detector of (usually) lower resolution than the image soften it.
    optics = sc.thermal_optics
    if optics.detector_scale < 1.0:
        dw, dh = max(1, int(w * optics.detector_scale)), max(1, int(h * optics.detector_scale))
        t = cv2.resize(t, (dw, dh), interpolation=cv2.INTER_AREA)
    if optics.blur_sigma > 0.0:
        t = cv2.GaussianBlur(t, (0, 0), optics.blur_sigma)
    if t.shape != (h, w):
        t = cv2.resize(t, (w, h), interpolation=cv2.INTER_LINEAR)
    t = t + 1.2 * st.vignette + st.fpn[None, :]
    t = t + rng.standard_normal((h, w), dtype=np.float32) * np.float32(cond.thermal_noise)
    if bits == 16:  # radiometric TLinear: counts are centikelvin
        return np.round((t + 273.15) * 100.0).clip(0, 65535).astype(np.float32)
    if bits != 8:
        raise ValueError(f"thermal_bits must be 8 or 16, got {bits}")
    return _agc(t)


def _agc(t: np.ndarray) -> np.ndarray:
    """8-bit automatic gain control as thermal cores do it: a linear stretch between robust
    extremes mixed with a plateau-clipped histogram equalisation (so that a cold sky or a
    hot exhaust does not squash everything else into one grey)."""
    sub = t[::3, ::3]
    lo, mid, hi = np.percentile(sub, [0.5, 50.0, 99.95])
    hi = max(hi, mid + 10.0, lo + 8.0)  # head-room above the scene for warm bodies
    hist, edges = np.histogram(sub, bins=128, range=(lo, hi))
    hist = np.minimum(hist, max(1.0, 2.0 * hist.mean()))
    cdf = np.concatenate([[0.0], np.cumsum(hist)]) / max(hist.sum(), 1)
    lut = 0.5 * cdf + 0.5 * np.linspace(0.0, 1.0, len(edges))
    out = np.interp(t, edges, lut) * 255.0
    return np.round(out).astype(np.float32)


# -------------------------------------------------------------------- annotation


def _annotate(sc: Scene, kind, owner, actors, full_area, windows):
    """Tight boxes of the VISIBLE part of each actor; masks for segmentation/saliency."""
    h, w = kind.shape
    mask = (kind == ROAD).astype(np.uint8)
    saliency = np.zeros((h, w), np.float32)
    min_h = max(5.0, 0.02 * h)
    boxes, labels, ids = [], [], []
    for i in actors:
        a = sc.actors[i]
        x0, y0, x1, y1 = windows[i]
        mine = owner[y0:y1, x0:x1] == i + 1
        area = int(mine.sum())
        if area == 0:
            continue
        rows = np.nonzero(mine.any(axis=1))[0]
        cols = np.nonzero(mine.any(axis=0))[0]
        box = (x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1)
        ok = area >= 0.25 * full_area[i] and box[3] - box[1] >= min_h and box[2] - box[0] >= 2
        sub = mask[y0:y1, x0:x1]
        if ok:
            boxes.append(box)
            labels.append(a.cls)
            ids.append(i)
            sub[mine] = a.cls + SEG_OFFSET
            if area >= 0.004 * h * w:
                saliency[y0:y1, x0:x1][mine] = 1.0
        else:
            sub[mine] = 255  # visible but too small/occluded to label: ignore, not background
    b = np.array(boxes, np.float32).reshape(-1, 4)
    return b, np.array(labels, np.int64), np.array(ids, np.int64), mask, saliency
