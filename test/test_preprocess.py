"""The single preprocessing path: letterbox geometry and thermal normalisation."""

import cv2
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ivtuning_ros.preprocess import (
    THERMAL_PRESETS,
    ThermalNorm,
    letterbox_for,
    percentiles,
    prepare_pair,
)
from ivtuning_ros.types import Detections, RGBTSample


# allow_subnormal=False: ONNX Runtime sessions (set_denormal_as_zero) flush subnormals
# process-wide, and hypothesis refuses subnormal strategies once that is on.
# The example: a 1366x8 strip resizes to 1 px wide (1.5 rounded down); boxes must follow
# that rounded resize, not the nominal scale, or their far edge lands past the image.
@settings(max_examples=60, deadline=None)
@example(src_h=1366, src_w=8, x0=0.75, y0=0.0, bw=0.125, bh=0.125)
@example(src_h=2000, src_w=1, x0=0.5, y0=0.5, bw=0.2, bh=0.2)
@given(
    src_h=st.integers(1, 2000),
    src_w=st.integers(1, 2000),
    x0=st.floats(0, 0.8, allow_subnormal=False),
    y0=st.floats(0, 0.8, allow_subnormal=False),
    bw=st.floats(0.05, 0.2),
    bh=st.floats(0.05, 0.2),
)
def test_boxes_survive_the_round_trip_through_the_letterbox(src_h, src_w, x0, y0, bw, bh):
    box = letterbox_for((src_h, src_w), (256, 320))
    boxes = np.array([[x0 * src_w, y0 * src_h, (x0 + bw) * src_w, (y0 + bh) * src_h]], np.float32)
    back = box.boxes_to_source(box.boxes_to_input(boxes))
    np.testing.assert_allclose(back, boxes, rtol=1e-4, atol=1e-2)
    inside = box.boxes_to_input(boxes)
    px, py = box.pad_xy
    rh, rw = box.resized_hw
    assert (inside[:, 0::2] >= px - 1e-3).all() and (inside[:, 0::2] <= px + rw + 1e-3).all()
    assert (inside[:, 1::2] >= py - 1e-3).all() and (inside[:, 1::2] <= py + rh + 1e-3).all()


def test_a_strip_narrower_than_a_network_pixel_still_letterboxes():
    rgb = np.full((2000, 3, 3), 200, np.uint8)  # resizes to 0.38 px wide: kept at 1 px
    rgb_t, th_t, box = prepare_pair(rgb, np.zeros((2000, 3), np.float32), (256, 320),
                                    THERMAL_PRESETS["agc8"])  # fmt: skip
    assert box.resized_hw == (256, 1) and rgb_t.shape == (3, 256, 320) == (3, *th_t.shape[1:])
    assert rgb_t[:, :, box.pad_xy[0]].min() == pytest.approx(200 / 255)


def test_letterbox_pads_the_short_side_and_keeps_aspect():
    rgb = np.zeros((480, 640, 3), np.uint8)
    rgb[:, :320] = 255  # left half white
    thermal = np.full((480, 640), 128.0, np.float32)
    rgb_t, th_t, box = prepare_pair(rgb, thermal, (256, 320), THERMAL_PRESETS["agc8"])
    assert rgb_t.shape == (3, 256, 320) and th_t.shape == (1, 256, 320)
    assert box.scale == pytest.approx(0.5)
    assert box.pad_xy == (0, 8)
    assert rgb_t[:, 8:248, :150].min() == pytest.approx(1.0)  # white half
    assert rgb_t[:, 8:248, 170:].max() == pytest.approx(0.0)  # black half
    assert rgb_t[:, :8].max() == pytest.approx(114 / 255)  # padding rows
    np.testing.assert_allclose(th_t[0, 8:248], 128.0 / 255.0, atol=1e-6)


def test_mask_maps_back_to_source_size():
    box = letterbox_for((100, 300), (256, 320))
    mask_in = np.zeros((256, 320), np.uint8)
    px, py = box.pad_xy
    rh, rw = box.resized_hw
    mask_in[py : py + rh, px + rw // 2 : px + rw] = 3
    back = box.map_to_source(mask_in, 0)  # cv2.INTER_NEAREST
    assert back.shape == (100, 300)
    assert (back[:, :140] == 0).all() and (back[:, 160:] == 3).all()


def test_thermal_norms():
    raw = np.linspace(0, 65535, 1000, dtype=np.float32).reshape(20, 50)
    y16 = THERMAL_PRESETS["y16_percentile"].normalize(raw)
    assert y16.min() == 0.0 and y16.max() == 1.0 and y16.dtype == np.float32
    celsius = THERMAL_PRESETS["celsius"].normalize(np.array([[-40.0, 20.0, 100.0]]))
    np.testing.assert_allclose(celsius, [[0.0, 0.5, 1.0]])
    flat = ThermalNorm("percentile", 1, 99).normalize(np.full((4, 4), 7.0))
    assert (flat == 0.5).all()


@settings(max_examples=80, deadline=None)
@given(
    dtype=st.sampled_from([np.uint8, np.uint16]),
    shape=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    span=st.integers(0, 65535),
    # no subnormals: ONNX Runtime, run earlier in the session, leaves flush-to-zero on
    qs=st.tuples(*[st.floats(0, 100, allow_subnormal=False)] * 2),
    seed=st.integers(0, 2**31),
)
def test_integer_percentiles_match_numpys(dtype, shape, span, qs, seed):
    """Y16 frames take the histogram route; it must give np.percentile's figures."""
    top = min(span, np.iinfo(dtype).max)
    values = np.random.default_rng(seed).integers(0, top + 1, shape).astype(dtype)
    np.testing.assert_allclose(percentiles(values, qs), np.percentile(values, qs), rtol=1e-12)


def test_y16_frame_normalises_as_its_float_copy():
    """Counts kept as uint16 (the codec no longer widens them) give the same picture."""
    y16 = np.random.default_rng(3).integers(2000, 9000, (48, 64)).astype(np.uint16)
    norm = THERMAL_PRESETS["y16_percentile"]
    np.testing.assert_allclose(norm.normalize(y16), norm.normalize(y16.astype(np.float32)),
                               atol=1e-6)  # fmt: skip
    assert norm.normalize(y16).dtype == np.float32


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_thermal_is_refused_with_a_count(bad):
    t = np.zeros((4, 4), np.float32)
    t[1, 2] = bad
    with pytest.raises(ValueError, match="1 non-finite"):
        THERMAL_PRESETS["celsius"].normalize(t)


def test_missing_stream_is_neutral_filled():
    rgb = np.zeros((64, 80, 3), np.uint8)
    _, th, _ = prepare_pair(rgb, None, (32, 40), THERMAL_PRESETS["agc8"])
    assert (th == 0.5).all()
    rgb_t, _, box = prepare_pair(None, np.zeros((64, 80)), (32, 40), THERMAL_PRESETS["agc8"])
    assert (rgb_t == 0.5).all() and box.src_w == 80


@pytest.mark.parametrize(
    "rgb,thermal,match",
    [
        (np.zeros((10, 10, 3), np.uint8), np.zeros((10, 12)), "differ in size"),
        (np.zeros((10, 10), np.uint8), np.zeros((10, 10)), "HxWx3 uint8"),
        (np.zeros((10, 10, 3), np.float32), np.zeros((10, 10)), "HxWx3 uint8"),
        (np.zeros((0, 10, 3), np.uint8), np.zeros((0, 10)), "empty image"),
        (None, None, "at least one"),
    ],
)
def test_bad_pairs_raise_clear_errors(rgb, thermal, match):
    with pytest.raises(ValueError, match=match):
        prepare_pair(rgb, thermal, (32, 32), THERMAL_PRESETS["agc8"])


def test_bad_config_and_types_are_refused():
    with pytest.raises(ValueError, match="high > low"):
        ThermalNorm("fixed", 10, 10)
    with pytest.raises(ValueError, match="mode"):
        ThermalNorm("gamma", 0, 1)
    with pytest.raises(ValueError, match="disagree"):
        Detections(np.zeros((2, 4), np.float32), np.zeros(1, np.float32), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="differ in size"):
        RGBTSample(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.float32), name="x")


def test_thermal_is_mapped_after_the_resize_as_if_before_it():
    """prepare_pair resizes raw thermal first and maps it to [0, 1] on the network's fewer
    pixels: the same input as normalising first wherever nothing is clipped, padding 0."""
    rng = np.random.default_rng(0)
    raw = rng.integers(20000, 30000, (96, 160)).astype(np.uint16)
    rgb = np.zeros((96, 160, 3), np.uint8)
    box = letterbox_for(raw.shape, (64, 64))
    wide = ThermalNorm("fixed", 15000, 35000)  # spans every value: nothing clipped
    _, th, _ = prepare_pair(rgb, raw, (64, 64), wide)
    before = box.apply(wide.normalize(raw), 0.0, cv2.INTER_LINEAR)
    np.testing.assert_allclose(th[0], before, atol=1e-5)
    py = box.pad_xy[1]
    assert py > 0 and (th[0, :py] == 0).all() and (th[0, -py:] == 0).all()
    # percentiles clip the extremes: only pixels beside a clipped one may differ
    y16 = THERMAL_PRESETS["y16_percentile"]
    _, th, _ = prepare_pair(rgb, raw, (64, 64), y16)
    before = box.apply(y16.normalize(raw), 0.0, cv2.INTER_LINEAR)
    assert np.abs(th[0] - before).mean() < 1e-3 and th.min() >= 0 and th.max() <= 1
    # a flat frame is mid grey inside the letterbox, 0 in the padding
    _, th, _ = prepare_pair(rgb, np.full((96, 160), 7.0), (64, 64), y16)
    assert (th[0, py:-py] == 0.5).all() and (th[0, :py] == 0).all()
