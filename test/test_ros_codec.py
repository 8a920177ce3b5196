"""Image codec: every encoding, both byte orders, padded rows, and each malformed header;
compressed images (JPEG, PNG) as image_transport publishes them, and each broken stream.

Messages are built here byte by byte with numpy, and compressed ones with OpenCV directly
(independently of the codec's encoders), so a decoder bug cannot hide behind a matching
encoder bug.
"""

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CompressedImage, Image

from ivtuning_ros.ros import codec
from ivtuning_ros.ros.codec import (
    ImageDecodeError,
    array_to_compressed,
    array_to_image,
    check_message,
    image_to_rgb,
    image_to_thermal,
)

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
    return px[:, :, 0]


def thermal_pixels(msg) -> np.ndarray:
    pixels, encoding = image_to_thermal(msg)
    assert encoding == msg.encoding  # the units' encoding, for the thermal norm
    assert pixels.dtype == np.dtype(LAYOUT[encoding][0])  # its own, in native byte order
    return pixels


@pytest.mark.parametrize(
    ("decode", "encodings", "dtype", "channels", "expected"),
    [
        (image_to_rgb, codec.RGB_ENCODINGS, np.uint8, (3,), expected_rgb),
        (thermal_pixels, codec.THERMAL_ENCODINGS, None, (), expected_thermal),  # own dtype
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
    assert (dtype is None or out.dtype == dtype) and out.shape == (*hw, *channels)
    np.testing.assert_array_equal(out, expected(px, encoding))


def test_big_endian_y16_is_not_byte_swapped_garbage():
    px = np.array([[[0x0102], [0x7FFF]]], np.uint16)
    big = raw_message(px, "mono16", True, 0)
    assert bytes(big.data[:2]) == b"\x01\x02"
    np.testing.assert_array_equal(image_to_thermal(big)[0], [[0x0102, 0x7FFF]])


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


def compressed(pixels: np.ndarray, fmt: str, ext: str = ".png") -> CompressedImage:
    """A CompressedImage as compressed_image_transport writes it: the picture handed to
    OpenCV as is (BGR order for colour), the format string given."""
    ok, data = cv2.imencode(ext, pixels)
    assert ok
    return CompressedImage(format=fmt, data=data.tobytes())


def smooth_picture(h=48, w=64, channels=3) -> np.ndarray:
    """JPEG keeps smooth pictures nearly exactly; noise would not survive it."""
    y, x = np.mgrid[0:h, 0:w]
    planes = [(x * 4) % 256, (y * 5) % 256, ((x + y) * 2) % 256, np.full_like(x, 200)]
    return np.stack(planes[:channels], axis=2).astype(np.uint8)


@pytest.mark.parametrize(
    ("encoding", "fmt", "to_rgb"),
    [
        ("bgr8", "bgr8; png compressed bgr8", lambda p: p[:, :, ::-1]),
        ("rgb8", "rgb8; png compressed bgr8", lambda p: p[:, :, ::-1]),  # sent as BGR
        ("rgb8", "rgb8; png compressed rgb8", lambda p: p),  # kept in RGB order
        ("bgra8", "bgra8; png compressed bgra8", lambda p: p[:, :, 2::-1]),
        ("mono8", "mono8; png compressed mono8", lambda p: np.repeat(p, 3, axis=2)),
        ("bgr8", "png", lambda p: p[:, :, ::-1]),  # older publishers: BGR, no encoding
    ],
)
def test_compressed_rgb_decodes_in_rgb_order(encoding, fmt, to_rgb):
    channels = {"bgra8": 4, "mono8": 1}.get(encoding, 3)
    px = smooth_picture(channels=channels)
    msg = compressed(px if channels > 1 else px[:, :, 0], fmt)
    np.testing.assert_array_equal(image_to_rgb(msg), to_rgb(px))


def test_compressed_jpeg_is_close_and_thermal_keeps_its_bit_depth():
    px = smooth_picture()
    rgb = image_to_rgb(compressed(px, "bgr8; jpeg compressed bgr8", ".jpg"))
    assert np.abs(rgb.astype(int) - px[:, :, ::-1]).mean() < 3
    y16 = (np.arange(48 * 64).reshape(48, 64) * 7 + 20000).astype(np.uint16)
    t, enc = image_to_thermal(compressed(y16, "mono16; png compressed mono16"))
    assert enc == "mono16" and t.dtype == np.uint16
    np.testing.assert_array_equal(t, y16)  # PNG is lossless, 16 bits kept
    t8, enc8 = image_to_thermal(compressed(y16.astype(np.uint8), "mono8; jpeg compressed mono8",
                                           ".jpg"))  # fmt: skip
    assert enc8 == "mono8" and t8.shape == (48, 64)


def test_encoder_round_trips_through_the_compressed_decoder():
    px = smooth_picture()
    for encoding, picture in (("rgb8", px), ("bgr8", px[:, :, ::-1])):
        msg = array_to_compressed(picture, encoding, "png")
        assert msg.format == f"{encoding}; png compressed bgr8"
        np.testing.assert_array_equal(image_to_rgb(msg), px)
    y16 = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    t, enc = image_to_thermal(array_to_compressed(y16, "mono16", "png"))
    assert enc == "mono16"
    np.testing.assert_array_equal(t, y16)
    with pytest.raises(ValueError, match="JPEG holds 8-bit"):
        array_to_compressed(y16, "mono16", "jpeg")


def cut(msg: CompressedImage, keep: float) -> CompressedImage:
    data = bytes(msg.data)
    return CompressedImage(format=msg.format, data=data[: int(len(data) * keep)])


JPEG = compressed(smooth_picture(), "bgr8; jpeg compressed bgr8", ".jpg")
PNG = compressed(smooth_picture(), "bgr8; png compressed bgr8")


@pytest.mark.parametrize(
    ("msg", "decode", "needle"),
    [
        (CompressedImage(format="jpeg", data=b""), image_to_rgb, "no data"),
        (CompressedImage(format="jpeg", data=b"GIF89a" + bytes(64)), image_to_rgb,
         "neither JPEG nor PNG (starts 47494638)"),
        (cut(JPEG, 0.6), image_to_rgb, "cut short"),
        (cut(PNG, 0.6), image_to_rgb, "cut short"),
        (CompressedImage(format="bgr8; png compressed bgr8", data=JPEG.data), image_to_rgb,
         "but the data is jpeg"),
        (compressed(np.zeros((4, 4), np.uint16), "mono16; png compressed mono16"),
         image_to_rgb, "decodes to mono16"),
        (JPEG, image_to_thermal, "decodes to bgr8"),
    ],
    ids=["empty", "not_an_image", "jpeg_cut", "png_cut", "format_lies", "rgb_gets_y16",
         "thermal_gets_colour"],
)  # fmt: skip
def test_broken_compressed_streams_raise_with_the_reason(msg, decode, needle):
    with pytest.raises(ImageDecodeError) as info:
        decode(msg)
    assert needle in str(info.value)
    if needle in ("no data", "cut short") or "neither" in needle or "but the" in needle:
        with pytest.raises(ImageDecodeError, match=needle.split(" (")[0]):
            check_message(msg, codec.RGB_ENCODINGS, "rgb")  # caught before it is queued


def test_bench_inputs_times_every_camera_format(tmp_path):
    """`ivtuning bench inputs` runs the node's input stage on every format it lists."""
    import json

    from ivtuning_ros.bench.inputs import RGB_FORMATS, THERMAL_FORMATS
    from ivtuning_ros.tools.cli import main

    out = tmp_path / "inputs.json"
    args = ["bench", "inputs", "--rgb-size", "64x48", "--thermal-size", "40x32"]
    assert main([*args, "--runs", "3", "--warmup", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [(r["stream"], r["format"]) for r in report["rows"]] == [
        *(("rgb", f) for f in RGB_FORMATS),
        *(("thermal", f) for f in THERMAL_FORMATS),
    ]
    assert all(r["n"] == 3 and r["bytes"] > 0 and r["p99_ms"] >= 0 for r in report["rows"])
    with pytest.raises(SystemExit):
        main(["bench", "inputs", "--rgb-size", "64by48"])
