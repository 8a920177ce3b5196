"""Estimate the thermal -> RGB mapping of a camera rig (`ivtuning calibrate`).

Two ways in, both ending in one 3x3 homography (or a 2x3 affine) from thermal pixels to
RGB pixels, the `thermal_homography` / `thermal_affine` parameters of geometry.py:

- `natural` (no target needed): OpenCV's ECC (enhanced correlation coefficient)
  alignment of the two images' gradient magnitudes, coarse to fine. Edges of cars,
  people, kerbs and buildings appear in both bands even where intensities do not
  correspond (a warm engine is dark in RGB), so gradients, not intensities, are matched.
- `pattern`: a heated checkerboard seen by both cameras (its inner corners found by
  OpenCV in each image, the thermal one also tried inverted); all corners of all frames
  fit one mapping with RANSAC.

Each frame gives its own estimate, and ECC its correlation there. Per-frame estimates
are either close (a pixel or two) or far off (ECC locked onto the wrong structure, at a
low correlation), so the rig's mapping is a consensus of where they put the thermal
image's corners: the per-corner median first, then the mean of the estimates near it
weighted by correlation**4 (`ivtuning bench registration`: on 8 known warps of real
pairs the median alone recovered them to 2.66 px, this to 1.18 px). Estimates are
refused, with the reason, when too few frames succeed or the mapping is degenerate
(flipped, collapsed or absurdly scaled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

Model = Literal["homography", "affine"]
Method = Literal["natural", "pattern"]
LEVELS = 4  # ECC pyramid levels (x1/8 .. x1); the two coarsest fit an affine first
MAX_SCALE_CHANGE = 4.0  # a mapping that scales the thermal image beyond x4 or x1/4 is wrong


class CalibrationError(ValueError):
    """The mapping could not be estimated (the old one is to be kept)."""


@dataclass
class Calibration:
    """The estimated thermal -> RGB mapping and how well the frames agreed on it."""

    matrix: np.ndarray  # 3x3, thermal pixels -> RGB pixels
    model: Model
    method: Method
    frames_used: int
    frames_failed: int
    spread_px: float  # median distance of the frames' corner estimates from the result
    failures: list[str] = field(default_factory=list)  # why frames were not used

    def params(self) -> dict[str, list[float]]:
        """The node parameters holding this mapping (the other one zeroed)."""
        m = self.matrix / self.matrix[2, 2]
        if self.model == "affine":
            return {
                "thermal_affine": [float(v) for v in m[:2].ravel()],
                "thermal_homography": [0.0] * 9,
            }
        return {"thermal_homography": [float(v) for v in m.ravel()], "thermal_affine": [0.0] * 6}


def grey01(image: np.ndarray) -> np.ndarray:
    """A colour or single-channel image of any units -> float32 grey in [0, 1] (1st-99th
    percentile stretch, so 16-bit thermal counts and 8-bit RGB look alike)."""
    img = np.asarray(image, np.float32)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    lo, hi = np.percentile(img, (1, 99))
    return np.clip((img - lo) / max(float(hi - lo), 1e-6), 0, 1).astype(np.float32)


def gradient_image(grey: np.ndarray) -> np.ndarray:
    """Gradient magnitude divided by its local mean (10 px), smoothed: edges of either
    polarity and any contrast weigh alike in both bands, which is what lets ECC align an
    RGB image with a thermal one (plain gradient magnitudes put single-pair estimates
    ~12 px from MSRS's registration, these ~6 px; measured in docs/benchmarks.md)."""
    g = cv2.GaussianBlur(np.asarray(grey, np.float32), (0, 0), 1.5)
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
    mag = cv2.magnitude(gx, gy)
    local = cv2.GaussianBlur(mag, (0, 0), 10.0) + 1e-3
    return cv2.GaussianBlur(mag / local, (0, 0), 1.5).astype(np.float32)


def _scale(sx: float, sy: float) -> np.ndarray:
    return np.diag([sx, sy, 1.0])


def coarse_mapping(rgb: np.ndarray, thermal: np.ndarray, scale: float = 0.25) -> np.ndarray:
    """A similarity (3x3, thermal -> RGB pixels) found by search: the thermal image's
    gradients, resized onto the RGB grid, scaled by +-10% and turned by +-3 degrees about
    the centre, each shift found by phase correlation with the RGB gradients; the best
    response wins. ECC starts from it (it converges only from within a few pixels)."""
    h, w = rgb.shape[:2]
    th, tw = thermal.shape[:2]
    size = (max(16, round(w * scale)), max(16, round(h * scale)))
    fixed = cv2.resize(gradient_image(grey01(rgb)), size, interpolation=cv2.INTER_AREA)
    moving = cv2.resize(
        gradient_image(cv2.resize(grey01(thermal), (w, h), interpolation=cv2.INTER_AREA)),
        size,
        interpolation=cv2.INTER_AREA,
    )
    window = cv2.createHanningWindow(size, cv2.CV_32F)
    centre = (size[0] / 2, size[1] / 2)
    best = (-1.0, None)
    for zoom in (0.9, 0.95, 1.0, 1.05, 1.1):
        for angle in (-3.0, -1.5, 0.0, 1.5, 3.0):
            rot = cv2.getRotationMatrix2D(centre, angle, zoom)
            turned = cv2.warpAffine(moving, rot, size, borderMode=cv2.BORDER_REFLECT)
            (dx, dy), _ = cv2.phaseCorrelate(turned, fixed, window)
            rot[:, 2] += (dx, dy)
            # hypotheses are compared by the correlation of the aligned gradients (phase
            # correlation's peak height favours some zooms whatever the content)
            aligned = cv2.warpAffine(moving, rot, size, borderMode=cv2.BORDER_CONSTANT)
            inside = cv2.warpAffine(np.ones_like(moving), rot, size) > 0.99
            score = _correlation(fixed[inside], aligned[inside])
            if score > best[0]:
                best = (score, np.vstack([rot, [0, 0, 1]]))
    s = _scale(size[0] / w, size[1] / h)
    return np.linalg.inv(s) @ best[1] @ s @ _scale(w / tw, h / th)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 16:
        return -1.0
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / max(np.sqrt((a * a).sum() * (b * b).sum()), 1e-12))


def ecc_mapping(
    rgb: np.ndarray,
    thermal: np.ndarray,
    model: Model = "homography",
    init: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """One pair's thermal -> RGB mapping (3x3) by ECC on gradient magnitudes, coarse to
    fine from `init` (default: the plain resize), and the correlation it reached at full
    resolution. Raises CalibrationError when ECC does not converge."""
    h, w = rgb.shape[:2]
    th, tw = thermal.shape[:2]
    # the thermal image resized onto the RGB grid, then the residual mapping is estimated
    resize = _scale(w / tw, h / th)
    start = resize if init is None else np.asarray(init, np.float64)
    residual = start @ np.linalg.inv(resize)  # resized-thermal -> RGB
    moving = gradient_image(cv2.resize(grey01(thermal), (w, h), interpolation=cv2.INTER_AREA))
    fixed = gradient_image(grey01(rgb))
    # ECC's warp maps template (RGB) coordinates to input (thermal) ones: the inverse
    warp = np.linalg.inv(residual)
    warp /= warp[2, 2]
    for level in range(LEVELS - 1, -1, -1):
        # the coarse levels only have the pixels for an affine; perspective comes last
        fine = model == "homography" and level < 2
        motion = cv2.MOTION_HOMOGRAPHY if fine else cv2.MOTION_AFFINE
        f = 0.5**level
        size = (max(16, round(w * f)), max(16, round(h * f)))
        s = _scale(size[0] / w, size[1] / h)
        level_warp = s @ warp @ np.linalg.inv(s)
        guess = (level_warp / level_warp[2, 2]).astype(np.float32)
        if not fine:
            guess = guess[:2]
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
        try:
            correlation, found = cv2.findTransformECC(
                cv2.resize(fixed, size, interpolation=cv2.INTER_AREA),
                cv2.resize(moving, size, interpolation=cv2.INTER_AREA),
                guess,
                motion,
                criteria,
                None,
                5,
            )
        except cv2.error:
            raise CalibrationError(
                f"ECC did not converge at 1/{2**level} scale (too little structure shared "
                "by the two images there)"
            ) from None
        found = found.astype(np.float64) if fine else np.vstack([found, [0, 0, 1]])
        warp = np.linalg.inv(s) @ found @ s
    return np.linalg.inv(warp) @ resize, float(correlation)


def pattern_points(
    rgb: np.ndarray, thermal: np.ndarray, pattern: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Inner checkerboard corners found in both images ((N, 2) thermal, (N, 2) RGB
    pixels); the thermal image is also tried inverted (a heated board's squares swap
    brightness). Raises CalibrationError when either image lacks the pattern."""
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    found = []
    for name, img in (("RGB", grey01(rgb)), ("thermal", grey01(thermal))):
        u8 = (img * 255).astype(np.uint8)
        for candidate in (u8, 255 - u8) if name == "thermal" else (u8,):
            ok, corners = cv2.findChessboardCorners(candidate, pattern, flags=flags)
            if ok:
                criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)
                corners = cv2.cornerSubPix(candidate, corners, (5, 5), (-1, -1), criteria)
                found.append(corners.reshape(-1, 2))
                break
        else:
            raise CalibrationError(
                f"no {pattern[0]}x{pattern[1]} checkerboard found in the {name} image"
            )
    rgb_pts, thermal_pts = found
    # the two detections may start from opposite ends of the board: keep the order that
    # preserves the direction of the first row
    if np.dot(rgb_pts[-1] - rgb_pts[0], thermal_pts[-1] - thermal_pts[0]) < 0:
        thermal_pts = thermal_pts[::-1]
    return thermal_pts, rgb_pts


def corners_of(matrix: np.ndarray, thermal_hw: tuple[int, int]) -> np.ndarray:
    """Where a mapping sends the thermal image's four corners: (4, 2) RGB pixels."""
    h, w = thermal_hw
    pts = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(pts, np.asarray(matrix, np.float64)).reshape(4, 2)


def corner_error(estimate: np.ndarray, truth: np.ndarray, thermal_hw: tuple[int, int]) -> float:
    """Mean distance (RGB pixels) between where two mappings put the thermal corners."""
    diff = corners_of(estimate, thermal_hw) - corners_of(truth, thermal_hw)
    return float(np.linalg.norm(diff, axis=1).mean())


def check_mapping(matrix: np.ndarray, thermal_hw: tuple[int, int], rgb_hw: tuple[int, int]) -> None:
    """Refuse a degenerate mapping: non-finite, flipped or twisted (corners out of
    order), or scaling the thermal image beyond MAX_SCALE_CHANGE of the plain resize."""
    if not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) < 1e-12:
        raise CalibrationError("the mapping is singular")
    corners = corners_of(matrix, thermal_hw)
    if not np.isfinite(corners).all():
        raise CalibrationError("the mapping sends an image corner to infinity")
    if not cv2.isContourConvex(corners.astype(np.float32).reshape(-1, 1, 2)):
        raise CalibrationError("the mapping folds the thermal image (corners out of order)")
    area = cv2.contourArea(corners.astype(np.float32))
    (ax, ay), (bx, by) = corners[1] - corners[0], corners[3] - corners[0]
    signed = ax * by - ay * bx
    ratio = area / float(rgb_hw[0] * rgb_hw[1])
    if signed <= 0 or not 1 / MAX_SCALE_CHANGE**2 < ratio < MAX_SCALE_CHANGE**2:
        raise CalibrationError(
            f"the mapping is degenerate (mirrored, or the thermal image covers {ratio:.2f}x "
            "the RGB image)"
        )


def median_mapping(
    matrices: Sequence[np.ndarray], thermal_hw: tuple[int, int], model: Model
) -> tuple[np.ndarray, float]:
    """The per-corner median of several mappings, refitted; and the median distance of
    the inputs' corners from it (their spread, pixels)."""
    corners = _corners(matrices, thermal_hw)
    median = np.median(corners, axis=0)
    return _fit_corners(median, thermal_hw, model), _spread(corners, median)


INLIER_SPREAD = 3.0  # estimates within 3x the median distance from the median are averaged
CORRELATION_POWER = 4  # their weight: ECC correlation ** 4 (measured: 2.66 -> 1.18 px)


def consensus_mapping(
    matrices: Sequence[np.ndarray],
    correlations: Sequence[float],
    thermal_hw: tuple[int, int],
    model: Model,
) -> tuple[np.ndarray, float]:
    """The correlation-weighted mean of the estimates near the per-corner median (the
    far ones, ECC's wrong basins, left out), refitted; and the inputs' spread."""
    corners = _corners(matrices, thermal_hw)
    distance = np.linalg.norm(corners - np.median(corners, axis=0)[None], axis=2).mean(axis=1)
    near = distance <= INLIER_SPREAD * max(float(np.median(distance)), 1e-3)
    weight = np.asarray(correlations, np.float64)[near].clip(1e-6) ** CORRELATION_POWER
    mean = (corners[near] * weight[:, None, None]).sum(axis=0) / weight.sum()
    return _fit_corners(mean, thermal_hw, model), _spread(corners, mean)


def _corners(matrices: Sequence[np.ndarray], thermal_hw: tuple[int, int]) -> np.ndarray:
    """(N, 4, 2): where each mapping puts the thermal image's corners."""
    return np.stack([corners_of(m, thermal_hw) for m in matrices])


def _fit_corners(corners: np.ndarray, thermal_hw: tuple[int, int], model: Model) -> np.ndarray:
    """The mapping (3x3) that sends the thermal image's corners to `corners`."""
    h, w = thermal_hw
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    if model == "homography":
        return cv2.getPerspectiveTransform(src, corners.astype(np.float32)).astype(np.float64)
    affine, _ = cv2.estimateAffine2D(src, corners.astype(np.float32), method=cv2.LMEDS)
    return np.vstack([affine, [0, 0, 1]])


def _spread(corners: np.ndarray, centre: np.ndarray) -> float:
    return float(np.median(np.linalg.norm(corners - centre[None], axis=2)))


def calibrate(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    method: Method = "natural",
    model: Model = "homography",
    pattern: tuple[int, int] = (9, 6),
    min_frames: int = 3,
    init: np.ndarray | None = None,
) -> Calibration:
    """The rig's thermal -> RGB mapping from (rgb, thermal) pairs of one rig (spread over
    a drive, not consecutive frames); raises CalibrationError (why) when fewer than
    `min_frames` pairs give an estimate or the result is degenerate."""
    if not pairs:
        raise CalibrationError("no image pairs to calibrate from")
    rgb_hw, thermal_hw = pairs[0][0].shape[:2], pairs[0][1].shape[:2]
    for i, (rgb, thermal) in enumerate(pairs):
        if thermal.shape[:2] != thermal_hw or rgb.shape[:2] != rgb_hw:
            raise CalibrationError(
                f"pair {i}: sizes {rgb.shape[:2]} / {thermal.shape[:2]} differ from the first "
                f"pair's {rgb_hw} / {thermal_hw} (one rig, one calibration)"
            )
    if method == "pattern":
        matrix, spread, used, failures = _from_pattern(pairs, model, pattern, min_frames)
    else:
        # first pass from each pair's own search; second pass from the first pass's
        # consensus, so pairs whose search started ECC in the wrong basin get another go
        matrices, _, failures = _ecc_each(pairs, model, init, thermal_hw, rgb_hw)
        _enough(len(matrices), len(pairs), failures, min_frames)
        first, _ = median_mapping(matrices, thermal_hw, model)
        matrices, correlations, failures = _ecc_each(pairs, model, first, thermal_hw, rgb_hw)
        _enough(len(matrices), len(pairs), failures, min_frames)
        matrix, spread = consensus_mapping(matrices, correlations, thermal_hw, model)
        used = len(matrices)
    check_mapping(matrix, thermal_hw, rgb_hw)
    return Calibration(matrix, model, method, used, len(pairs) - used, spread, failures)


def _ecc_each(
    pairs, model, init, thermal_hw, rgb_hw
) -> tuple[list[np.ndarray], list[float], list[str]]:
    """Each pair's ECC estimate and correlation (and why the others failed)."""
    matrices, correlations, failures = [], [], []
    for i, (rgb, thermal) in enumerate(pairs):
        try:
            start = init if init is not None else coarse_mapping(rgb, thermal)
            m, correlation = ecc_mapping(rgb, thermal, model, start)
            check_mapping(m, thermal_hw, rgb_hw)
            matrices.append(m)
            correlations.append(correlation)
        except CalibrationError as err:
            failures.append(f"pair {i}: {err}")
    return matrices, correlations, failures


def _from_pattern(pairs, model, pattern, min_frames):
    thermal_pts, rgb_pts, failures = [], [], []
    for i, (rgb, thermal) in enumerate(pairs):
        try:
            t_pts, r_pts = pattern_points(rgb, thermal, pattern)
            thermal_pts.append(t_pts)
            rgb_pts.append(r_pts)
        except CalibrationError as err:
            failures.append(f"pair {i}: {err}")
    _enough(len(thermal_pts), len(pairs), failures, min_frames)
    src, dst = np.concatenate(thermal_pts), np.concatenate(rgb_pts)
    if model == "homography":
        matrix, _ = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    else:
        affine, _ = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0)
        matrix = None if affine is None else np.vstack([affine, [0, 0, 1]])
    if matrix is None:
        raise CalibrationError("the checkerboard corners fit no mapping")
    mapped = cv2.perspectiveTransform(src.reshape(-1, 1, 2).astype(np.float64), matrix)
    spread = float(np.median(np.linalg.norm(mapped.reshape(-1, 2) - dst, axis=1)))
    return matrix, spread, len(thermal_pts), failures


def _enough(used: int, total: int, failures: list[str], min_frames: int) -> None:
    if used < min_frames:
        shown = "; ".join(failures[:3]) + (" ..." if len(failures) > 3 else "")
        raise CalibrationError(
            f"only {used} of {total} pairs gave an estimate (need {min_frames}): {shown}"
        )
