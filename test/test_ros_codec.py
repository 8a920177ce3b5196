"""Image codec: every encoding, both byte orders, padded rows, and each malformed header.

Messages are built here byte by byte with numpy (independently of the codec's encoder),
so a decoder bug cannot hide behind a matching encoder bug.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import Image

from ivtuning_ros.ros import codec
from ivtuning_ros.ros.codec import ImageDecodeError, array_to_image, image_to_rgb, image_to_thermal

# A loaded 2-core machine makes data generation slow; that is not a failure.
SLOW_OK = [HealthCheck.too_slow]

LAYOUT = {  # encoding -> (numpy sample type, channels)
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "8UC1": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}


def raw_message(pixels: np.ndarray, encoding: str, bigendian: bool, pad: int) -> Image:
    """Serialise (H, W, C) pixels by hand: explicit byte order, `pad` zero bytes per row."""
    h, w, _ = pixels.shape
    dtype, _ = LAYOUT[encoding]
    wire = np.dtype(dtype).newbyteorder(">" if bigendian else "<")
    rows = [pixels[r].astype(wire).tobytes() + b"\xab" * pad for r in range(h)]
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian))
    msg.step = len(rows[0])
    msg.data = b"".join(rows)
    return msg


def random_pixels(rng: np.random.Generator, encoding: str, h: int, w: int) -> np.ndarray:
    dtype, ch = LAYOUT[encoding]
    if dtype is np.float32:
        return rng.uniform(-40.0, 150.0, (h, w, ch)).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max + 1, (h, w, ch), dtype=np.int64).astype(dtype)


def expected_rgb(px: np.ndarray, encoding: str) -> np.ndarray:
    return {
        "rgb8": lambda p: p,
        "bgr8": lambda p: p[:, :, ::-1],
        "rgba8": lambda p: p[:, :, :3],
        "bgra8": lambda p: p[:, :, [2, 1, 0]],
        "mono8": lambda p: np.repeat(p, 3, axis=2),
    }[encoding](px)


shapes = st.tuples(st.integers(1, 9), st.integers(1, 11))


def expected_thermal(px: np.ndarray, encoding: str) -> np.ndarray:
    return px[:, :, 0].astype(np.float32)


@pytest.mark.parametrize(
    ("decode", "encodings", "dtype", "channels", "expected"),
    [
        (image_to_rgb, codec.RGB_ENCODINGS, np.uint8, (3,), expected_rgb),
        (image_to_thermal, codec.THERMAL_ENCODINGS, np.float32, (), expected_thermal),
    ],
    ids=["rgb_in_rgb_order", "thermal_in_source_units"],
)
@settings(max_examples=60, deadline=None, suppress_health_check=SLOW_OK)
@given(
    data=st.data(),
    hw=shapes,
    bigendian=st.booleans(),
    pad=st.integers(0, 7),
    seed=st.integers(0, 2**31),
)
def test_every_encoding_decodes(
    decode, encodings, dtype, channels, expected, data, hw, bigendian, pad, seed
):
    encoding = data.draw(st.sampled_from(encodings), label="encoding")
    px = random_pixels(np.random.default_rng(seed), encoding, *hw)
    out = decode(raw_message(px, encoding, bigendian, pad))
    assert out.dtype == dtype and out.shape == (*hw, *channels)
    np.testing.assert_array_equal(out, expected(px, encoding))


def test_big_endian_y16_is_not_byte_swapped_garbage():
    px = np.array([[[0x0102], [0x7FFF]]], np.uint16)
    big = raw_message(px, "mono16", True, 0)
    assert bytes(big.data[:2]) == b"\x01\x02"
    np.testing.assert_array_equal(image_to_thermal(big), [[0x0102, 0x7FFF]])


@settings(max_examples=40, deadline=None, suppress_health_check=SLOW_OK)
@given(
    encoding=st.sampled_from(list(LAYOUT)),
    hw=shapes,
    bigendian=st.booleans(),
    pad=st.integers(0, 5),
    seed=st.integers(0, 2**31),
)
def test_encoder_round_trips_through_the_decoder(encoding, hw, bigendian, pad, seed):
    px = random_pixels(np.random.default_rng(seed), encoding, *hw)
    msg = array_to_image(px, encoding, bigendian=bigendian, row_padding=pad)
    assert msg.step == hw[1] * px.dtype.itemsize * px.shape[2] + pad
    ref = raw_message(px, encoding, bigendian and px.dtype.itemsize > 1, pad)
    row = hw[1] * px.dtype.itemsize * px.shape[2]
    for r in range(hw[0]):  # same payload bytes as the hand-built message
        a = bytes(msg.data[r * msg.step : r * msg.step + row])
        assert a == bytes(ref.data[r * ref.step : r * ref.step + row])


def good(encoding="rgb8", h=4, w=5) -> Image:
    dtype, channels = LAYOUT[encoding]
    return raw_message(np.zeros((h, w, channels), dtype), encoding, False, 0)


@pytest.mark.parametrize(
    ("mutate", "decode", "needle"),
    [
        (lambda m: setattr(m, "encoding", "yuv422"), image_to_rgb, "unsupported encoding 'yuv422'"),
        (lambda m: setattr(m, "encoding", "16UC1"), image_to_rgb, "unsupported encoding '16UC1'"),
        (lambda m: setattr(m, "encoding", "rgb8"), image_to_thermal, "unsupported encoding"),
        (lambda m: setattr(m, "data", bytes(m.data)[:-1]), image_to_rgb, "needs 60"),
        (lambda m: setattr(m, "data", bytes(m.data) + b"\0"), image_to_rgb, "has 61 bytes"),
        (lambda m: setattr(m, "step", 14), image_to_rgb, "step 14 is smaller than width 5 x 3"),
        (lambda m: setattr(m, "width", 0), image_to_rgb, "zero-size image (0x4)"),
        (lambda m: setattr(m, "height", 0), image_to_rgb, "zero-size"),
    ],
)
def test_malformed_headers_raise_with_the_reason(mutate, decode, needle):
    msg = good("mono8" if decode is image_to_thermal else "rgb8")
    mutate(msg)
    with pytest.raises(ImageDecodeError, match=None) as info:
        decode(msg)
    assert needle in str(info.value)
    assert info.value.what == ("thermal" if decode is image_to_thermal else "rgb")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_temperatures_are_rejected(bad):
    px = np.full((3, 4, 1), 21.5, np.float32)
    px[1, 2, 0] = bad
    with pytest.raises(ImageDecodeError, match="1 non-finite"):
        image_to_thermal(raw_message(px, "32FC1", False, 0))


def test_encoder_refuses_wrong_channel_count():
    with pytest.raises(ImageDecodeError, match="rgb8 needs 3 channels"):
        array_to_image(np.zeros((2, 2), np.uint8), "rgb8")
