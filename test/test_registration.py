"""Thermal -> RGB registration: the geometry the pixel path applies, `calibrate` (natural
scenes and a heated checkerboard), its refusals, and the CLI that writes the parameters."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from ivtuning_ros.geometry import ThermalGeometry
from ivtuning_ros.registration import (
    CalibrationError,
    calibrate,
    check_mapping,
    consensus_mapping,
    corner_error,
    corners_of,
    median_mapping,
)

W, H = 320, 240


def shift_scale(dx: float, dy: float, zoom: float = 1.0) -> np.ndarray:
    """A rig: misaligned thermal pixels -> registered thermal pixels."""
    c = np.array([W / 2, H / 2])
    m = np.diag([zoom, zoom, 1.0])
    m[:2, 2] = c - zoom * c + (dx, dy)
    return m


def seen_by(thermal: np.ndarray, rig: np.ndarray) -> np.ndarray:
    return cv2.warpPerspective(thermal, rig, (W, H), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)  # fmt: skip


@pytest.fixture(scope="module")
def scenes():
    """Registered pairs of random street-like layouts (rectangles over smooth shading):
    RGB in colour; thermal in 16-bit counts that invert and bend the brightness and blur
    it, as a different band would, keeping the edges where they are."""
    rng = np.random.default_rng(7)
    pairs = []
    for _ in range(6):
        grey = cv2.GaussianBlur(rng.random((H, W)).astype(np.float32), (0, 0), 25)
        grey = (grey - grey.min()) / (np.ptp(grey) + 1e-6) * 0.4
        for _ in range(25):
            x, y = int(rng.integers(0, W - 20)), int(rng.integers(0, H - 20))
            w, h = int(rng.integers(8, 80)), int(rng.integers(8, 60))
            grey[y : y + h, x : x + w] = rng.uniform(0.2, 1.0)
        rgb = (np.stack([grey, grey * 0.9, grey * 0.8], axis=2) * 255).astype(np.uint8)
        heat = cv2.GaussianBlur((1.0 - grey) ** 1.5, (0, 0), 1.2)
        thermal = 29000 + 3000 * heat + rng.normal(0, 15, (H, W)).astype(np.float32)
        pairs.append((rgb, thermal.astype(np.float32)))
    return pairs


def test_homography_geometry_maps_and_loads_from_a_parameters_file(tmp_path):
    thermal = np.arange(H * W, dtype=np.float32).reshape(H, W)
    shift = ThermalGeometry(homography=(1.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    np.testing.assert_allclose(shift.apply(thermal, (H, W))[:, 10], thermal[:, 7])
    assert not shift.aspect_mismatch((512, 640), (480, 640))
    with pytest.raises(ValueError, match="not both"):
        ThermalGeometry(affine=(1, 0, 0, 0, 1, 0), homography=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    with pytest.raises(ValueError, match="9 finite"):
        ThermalGeometry(homography=(1.0, 0.0, float("nan"), 0, 1, 0, 0, 0, 1))
    path = tmp_path / "rig.yaml"
    path.write_text("ivtuning_node:\n  ros__parameters:\n    thermal_homography: "
                    "[1.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]\n    thermal_affine: "
                    "[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]\n")  # fmt: skip
    assert ThermalGeometry.from_file(path) == shift
    (tmp_path / "none.yaml").write_text("ivtuning_node:\n  ros__parameters: {sync_slop: 0.1}\n")
    with pytest.raises(ValueError, match="no thermal_crop"):
        ThermalGeometry.from_file(tmp_path / "none.yaml")


@pytest.mark.parametrize("model", ["homography", "affine"])
def test_natural_scenes_recover_a_known_misalignment(scenes, model):
    rig = shift_scale(9.0, -6.0, 1.04)
    cal = calibrate([(rgb, seen_by(t, rig)) for rgb, t in scenes], model=model)
    assert corner_error(np.eye(3), rig, (H, W)) > 10  # what a plain resize would leave
    assert corner_error(cal.matrix, rig, (H, W)) < 1.0
    assert cal.frames_used == len(scenes) and cal.method == "natural"
    params = cal.params()
    key, other = ("thermal_homography", "thermal_affine") if model == "homography" else (
        "thermal_affine", "thermal_homography")  # fmt: skip
    assert any(params[key]) and not any(params[other])


def test_consensus_keeps_the_close_estimates_weighted_by_correlation():
    """Per-pair ECC estimates are close (a pixel or so, high correlation) or far off (a
    wrong basin, low correlation): the consensus leaves the far ones out and leans on
    the well-correlated ones; the plain median is pulled by the far ones."""
    rng = np.random.default_rng(3)
    truth = shift_scale(6.0, -4.0, 1.03)
    src = np.array([[0, 0], [W, 0], [W, H], [0, H]], np.float32)

    def moved(offset: np.ndarray) -> np.ndarray:
        dst = (corners_of(truth, (H, W)) + offset).astype(np.float32)
        return cv2.getPerspectiveTransform(src, dst).astype(np.float64)

    close = [moved(rng.normal(0, 1.0, (4, 2))) for _ in range(8)]
    far = [moved(np.array([25.0, 15.0]) + rng.normal(0, 3.0, (4, 2))) for _ in range(5)]
    correlations = [0.35] * 8 + [0.12] * 5
    consensus, spread = consensus_mapping(close + far, correlations, (H, W), "homography")
    median, _ = median_mapping(close + far, (H, W), "homography")
    assert corner_error(consensus, truth, (H, W)) < 0.8 < corner_error(median, truth, (H, W))
    assert spread > 0
    # a far estimate is left out whatever its correlation
    loud = consensus_mapping(close + far, [0.35] * 8 + [0.9] * 5, (H, W), "homography")[0]
    assert corner_error(loud, truth, (H, W)) < 0.8


def test_checkerboard_corners_fit_the_mapping():
    board = np.kron((np.indices((7, 10)).sum(0) % 2), np.ones((24, 24))).astype(np.float32)
    rgb_grey = np.full((H, W), 0.5, np.float32)
    rgb_grey[36 : 36 + 168, 40 : 40 + 240] = board
    rgb = (np.repeat(rgb_grey[..., None], 3, axis=2) * 255).astype(np.uint8)
    rig = shift_scale(-7.0, 5.0, 0.95)
    heated = cv2.GaussianBlur(30000 + 2000 * (1 - rgb_grey), (0, 0), 1.0)  # warm squares
    pairs = [(rgb, seen_by(heated, rig))] * 3
    cal = calibrate(pairs, method="pattern", pattern=(9, 6))
    assert corner_error(cal.matrix, rig, (H, W)) < 0.5 and cal.spread_px < 0.5


def test_refusals_name_the_reason(scenes):
    noise = np.random.default_rng(0)
    blank = [(noise.integers(0, 255, (H, W, 3), np.uint8), np.zeros((H, W), np.float32))] * 3
    with pytest.raises(CalibrationError, match="pairs gave an estimate"):
        calibrate(blank, method="pattern")
    with pytest.raises(CalibrationError, match="differ from the first"):
        calibrate([scenes[0], (scenes[1][0][:100], scenes[1][1])])
    with pytest.raises(CalibrationError, match="no image pairs"):
        calibrate([])
    mirror = np.array([[-1.0, 0, W], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(CalibrationError, match=r"degenerate|folds"):
        check_mapping(mirror, (H, W), (H, W))


def test_cli_writes_the_parameters_and_keeps_them_on_failure(scenes, tmp_path):
    from ivtuning_ros.ros.params import default_values, node_config

    folder = tmp_path / "rig"
    rig = shift_scale(6.0, 4.0)
    for sub in ("vi", "ir"):
        (folder / sub).mkdir(parents=True)
    for i, (rgb, thermal) in enumerate(scenes):
        cv2.imwrite(str(folder / "vi" / f"{i:03d}.png"), rgb[:, :, ::-1])
        cv2.imwrite(str(folder / "ir" / f"{i:03d}.png"), seen_by(thermal, rig).astype(np.uint16))
    out = tmp_path / "params.yaml"
    out.write_text("ivtuning_node:\n  ros__parameters:\n    sync_slop: 0.08\n")
    cmd = [sys.executable, "-m", "ivtuning_ros.tools.cli", "calibrate", "--pairs", str(folder),
           "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "thermal_homography" in done.stdout
    import yaml

    section = yaml.safe_load(out.read_text())["ivtuning_node"]["ros__parameters"]
    assert section["sync_slop"] == 0.08  # the rest of the file is kept
    cfg = node_config({**default_values(), **section})  # the node accepts what was written
    assert cfg.geometry.homography is not None
    before = out.read_text()
    for p in (folder / "ir").iterdir():  # now nothing in common with the RGB images
        cv2.imwrite(str(p), np.zeros((H, W), np.uint8))
    failed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1 and "left as it was" in failed.stderr
    assert out.read_text() == before


def test_training_and_eval_map_thermal_by_the_same_parameters(scenes, tmp_path):
    """A data source's thermal_geometry (training) and `eval --thermal-geometry` read the
    node's parameters and map each thermal image with ThermalGeometry.apply."""
    from ivtuning_ros.data.thermal_mapping import ThermalMapped
    from ivtuning_ros.train.config import SourceSection
    from ivtuning_ros.types import RGBTSample

    params = tmp_path / "rig.yaml"
    params.write_text("ivtuning_node:\n  ros__parameters:\n    thermal_homography: "
                      "[1.0, 0.0, 4.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]\n")  # fmt: skip
    samples = [RGBTSample(rgb, thermal, f"p{i}") for i, (rgb, thermal) in enumerate(scenes)]
    mapped = ThermalMapped(samples, ThermalGeometry.from_file(params))
    assert len(mapped) == len(samples)
    np.testing.assert_allclose(mapped[0].thermal[:, 20], samples[0].thermal[:, 16], rtol=1e-6)
    np.testing.assert_array_equal(mapped[1].rgb, samples[1].rgb)
    with pytest.raises(ValueError, match="thermal_geometry"):
        SourceSection(synthetic=None, fraction=0.1, thermal_geometry=str(params))


def test_cli_calibrates_from_a_bag(scenes, tmp_path):
    """A rosbag2 of the rig (RGB bgr8 and 16-bit thermal on the node's default topics):
    frames paired by stamp, the mapping recovered as from a folder."""
    from rclpy.serialization import serialize_message

    from ivtuning_ros.replay.bagio import IMAGE_TYPE, open_writer, typestore
    from ivtuning_ros.replay.synthetic_bag import DEFAULT_TOPICS, stamped_header
    from ivtuning_ros.ros.codec import array_to_image

    rig = shift_scale(-5.0, 7.0, 1.03)
    writer = open_writer(tmp_path / "bag", "mcap")
    conns = {role: writer.add_connection(DEFAULT_TOPICS[role], IMAGE_TYPE, typestore=typestore())
             for role in ("rgb", "thermal")}  # fmt: skip
    for i, (rgb, thermal) in enumerate(scenes):
        stamp = (i + 1) * 10**8
        raw = seen_by(thermal, rig).astype(np.uint16)
        for role, msg in (
            ("rgb", array_to_image(rgb[:, :, ::-1], "bgr8", stamped_header(stamp, "rgb"))),
            ("thermal", array_to_image(raw, "mono16", stamped_header(stamp + 5 * 10**6, "t"))),
        ):
            writer.write(conns[role], stamp, serialize_message(msg))
    writer.close()
    out = tmp_path / "rig.yaml"
    cmd = [sys.executable, "-m", "ivtuning_ros.tools.cli", "calibrate", "--bag",
           str(tmp_path / "bag"), "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"from {len(scenes)} of {len(scenes)} pairs" in done.stdout
    matrix = np.asarray(ThermalGeometry.from_file(out).homography).reshape(3, 3)
    assert corner_error(matrix, rig, (H, W)) < 1.0
