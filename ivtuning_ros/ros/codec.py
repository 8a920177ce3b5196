"""sensor_msgs/Image and CompressedImage <-> numpy for what RGB and thermal cameras publish.

Decoding honours `step` (row padding) and `is_bigendian`, and checks the header against
the data before touching pixels, so a malformed message becomes an `ImageDecodeError`
naming the reason (counted and reported by the node) instead of a crash or a silently
wrong picture. cv_bridge does the pixel copy where it is importable (a ROS install);
otherwise the numpy path below, which the tests cover for every encoding, both byte
orders and padded rows.

CompressedImage is what image_transport's "compressed" transport publishes and what most
robot bags hold (`<camera topic>/compressed`): JPEG or PNG, with a `format` such as
"bgr8; jpeg compressed bgr8" or "mono16; png compressed mono16" (older publishers: "jpeg").
The stream's own signature (JPEG or PNG) and end marker are checked before decoding, so
a stream cut short is reported as such (libjpeg builds differ: some decode it to a partly
grey picture); the encoding of the decoded picture follows from its channels and bit
depth, and its colour order from `format`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

try:  # a ROS 2 install ships cv_bridge; the PyPI wheels do not
    from cv_bridge import CvBridge

    _BRIDGE: CvBridge | None = CvBridge()
except ImportError:
    _BRIDGE = None


class ImageDecodeError(ValueError):
    """A sensor_msgs/Image that cannot be turned into pixels; the message says why.

    `what` names the stream ("rgb", "thermal") so the node can count it per input.
    """

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.what = what
        self.reason = reason


@dataclass(frozen=True)
class Encoding:
    dtype: np.dtype  # one channel's sample type (native byte order)
    channels: int

    @property
    def bytes_per_pixel(self) -> int:
        return self.dtype.itemsize * self.channels


ENCODINGS: dict[str, Encoding] = {
    "rgb8": Encoding(np.dtype(np.uint8), 3),
    "bgr8": Encoding(np.dtype(np.uint8), 3),
    "rgba8": Encoding(np.dtype(np.uint8), 4),
    "bgra8": Encoding(np.dtype(np.uint8), 4),
    "mono8": Encoding(np.dtype(np.uint8), 1),
    "8UC1": Encoding(np.dtype(np.uint8), 1),
    "mono16": Encoding(np.dtype(np.uint16), 1),
    "16UC1": Encoding(np.dtype(np.uint16), 1),
    "32FC1": Encoding(np.dtype(np.float32), 1),
}
RGB_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
THERMAL_ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1", "32FC1")
# Compressed streams: (leading signature, end marker) per codec.
COMPRESSED_CODECS = {
    "jpeg": (b"\xff\xd8\xff", b"\xff\xd9"),
    "png": (b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"),
}


def is_compressed(msg) -> bool:
    """A sensor_msgs/CompressedImage (it has `format`, an Image has `encoding`)."""
    return hasattr(msg, "format")


def check_compressed(msg, what: str) -> None:
    """Validate a CompressedImage's stream without decoding it (cheap).

    Raises ImageDecodeError naming `what` for an empty, unknown, truncated stream or one
    whose `format` names the other codec.
    """
    data = bytes(msg.data[:8]) if len(msg.data) else b""
    if not data:
        raise ImageDecodeError(what, "compressed image with no data")
    codec = next((c for c, (head, _) in COMPRESSED_CODECS.items() if data.startswith(head)), None)
    if codec is None:
        raise ImageDecodeError(
            what, f"compressed data is neither JPEG nor PNG (starts {data[:4].hex()})"
        )
    named = [c for c in COMPRESSED_CODECS if c in msg.format.lower()]
    if named and named != [codec]:
        raise ImageDecodeError(what, f"format {msg.format!r} but the data is {codec}")
    end = COMPRESSED_CODECS[codec][1]
    tail = bytes(msg.data[-len(end) - 16 :])  # encoders may pad a few bytes after the end
    if end not in tail:
        raise ImageDecodeError(what, f"{codec} data of {len(msg.data)} bytes is cut short")


def decode_compressed(msg, accepted: tuple[str, ...], what: str) -> tuple[np.ndarray, str]:
    """CompressedImage -> ((H, W, C) array, the encoding its pixels are in)."""
    check_compressed(msg, what)
    px = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_UNCHANGED)
    if px is None or px.size == 0:
        raise ImageDecodeError(what, f"compressed data could not be decoded ({msg.format!r})")
    px = px.reshape(px.shape[0], px.shape[1], -1)
    # compressed_image_transport writes "... compressed rgb8" when it kept RGB order
    order = "rgb" if "compressed rgb" in msg.format else "bgr"
    depth = {np.dtype(np.uint8): "8", np.dtype(np.uint16): "16"}.get(px.dtype, "?")
    encoding = {1: f"mono{depth}", 3: f"{order}{depth}", 4: f"{order}a{depth}"}.get(
        px.shape[2], f"{px.shape[2]} channels"
    )
    if encoding not in accepted:
        raise ImageDecodeError(
            what,
            f"compressed image decodes to {encoding} ({msg.format!r}); accepted: "
            f"{', '.join(accepted)}",
        )
    return px, encoding


def check_message(msg, accepted: tuple[str, ...], what: str) -> None:
    """The cheap check of an Image or CompressedImage before it is queued."""
    if is_compressed(msg):
        check_compressed(msg, what)
    else:
        check_image(msg, accepted, what)


def check_image(msg, accepted: tuple[str, ...], what: str) -> Encoding:
    """Validate an Image's header against its data without reading pixels (cheap).

    Raises ImageDecodeError naming `what` (e.g. "thermal") and the reason.
    """
    enc = ENCODINGS.get(msg.encoding) if msg.encoding in accepted else None
    if enc is None:
        raise ImageDecodeError(
            what, f"unsupported encoding {msg.encoding!r} (accepted: {', '.join(accepted)})"
        )
    if msg.width == 0 or msg.height == 0:
        raise ImageDecodeError(what, f"zero-size image ({msg.width}x{msg.height})")
    row = msg.width * enc.bytes_per_pixel
    if msg.step < row:
        raise ImageDecodeError(
            what,
            f"step {msg.step} is smaller than width {msg.width} x "
            f"{enc.bytes_per_pixel} bytes per pixel = {row}",
        )
    expected = msg.step * msg.height
    if len(msg.data) != expected:
        raise ImageDecodeError(
            what,
            f"data has {len(msg.data)} bytes, step {msg.step} x height "
            f"{msg.height} needs {expected}",
        )
    return enc


def _pixels(msg, enc: Encoding) -> np.ndarray:
    """(H, W, C) array in native byte order; a view into msg.data where possible."""
    if _BRIDGE is not None:
        arr = _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough")
        return arr.reshape(msg.height, msg.width, enc.channels)
    raw = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    raw = raw[:, : msg.width * enc.bytes_per_pixel]
    order = ">" if msg.is_bigendian else "<"
    wire = enc.dtype.newbyteorder(order) if enc.dtype.itemsize > 1 else enc.dtype
    arr = np.ascontiguousarray(raw).view(wire).reshape(msg.height, msg.width, enc.channels)
    return arr.astype(enc.dtype, copy=False)


def _decode(msg, accepted: tuple[str, ...], what: str) -> tuple[np.ndarray, str]:
    """Image or CompressedImage -> ((H, W, C) array in native byte order, its encoding)."""
    if is_compressed(msg):
        return decode_compressed(msg, accepted, what)
    return _pixels(msg, check_image(msg, accepted, what)), msg.encoding


_TO_RGB = {
    "bgr8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
}


def image_to_rgb(msg) -> np.ndarray:
    """RGB-camera Image or CompressedImage -> (H, W, 3) uint8 in RGB order (mono8 is
    repeated to 3)."""
    px, encoding = _decode(msg, RGB_ENCODINGS, "rgb")
    if encoding == "rgb8":
        return np.ascontiguousarray(px)
    # cv2's channel shuffles are several times faster than numpy's strided copies
    return cv2.cvtColor(px, _TO_RGB[encoding])


def image_to_thermal(msg) -> tuple[np.ndarray, str]:
    """Thermal Image or CompressedImage -> ((H, W) array in source units and their own
    dtype: uint8 AGC counts, uint16 Y16 counts or float32 deg C; the encoding those units
    belong to). Integer counts stay integers: ThermalNorm's percentiles are much faster
    on them.

    Non-finite temperatures (32FC1 NaN/inf) are rejected: normalising them would give a
    silently wrong picture.
    """
    px, encoding = _decode(msg, THERMAL_ENCODINGS, "thermal")
    t = px[:, :, 0]
    if px.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(t)))
        if bad:
            raise ImageDecodeError(
                "thermal", f"{encoding} image has {bad} non-finite (NaN/inf) pixels"
            )
    return t, encoding


def array_to_compressed(array: np.ndarray, encoding: str, codec: str = "jpeg", header=None):
    """numpy (H, W[, C]) in `encoding` -> sensor_msgs/CompressedImage as image_transport's
    compressed transport writes it (colour compressed in BGR order). For tests, the
    benchmark and synthetic bags; JPEG only holds 8-bit pictures."""
    from sensor_msgs.msg import CompressedImage

    if codec not in COMPRESSED_CODECS:
        raise ValueError(f"codec must be one of {', '.join(COMPRESSED_CODECS)}, got {codec!r}")
    arr = np.asarray(array)
    if encoding in ("rgb8", "rgba8"):
        arr = arr[:, :, 2::-1] if encoding == "rgb8" else arr[:, :, [2, 1, 0, 3]]
    target = {"rgb8": "bgr8", "rgba8": "bgra8"}.get(encoding, encoding)
    if codec == "jpeg" and arr.dtype != np.uint8:
        raise ValueError(f"JPEG holds 8-bit pictures, not {encoding}")
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if codec == "jpeg" else []
    ok, data = cv2.imencode(".jpg" if codec == "jpeg" else ".png", arr, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {arr.shape} {arr.dtype} picture as {codec}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = f"{encoding}; {codec} compressed {target}"
    msg.data = data.tobytes()
    return msg


def array_to_image(
    array: np.ndarray,
    encoding: str,
    header=None,
    *,
    bigendian: bool = False,
    row_padding: int = 0,
):
    """numpy (H, W[, C]) -> sensor_msgs/Image with the given encoding, byte order and padding.

    Used for our outputs (masks, overlay) and by tests and the benchmark to publish input.
    """
    from sensor_msgs.msg import Image

    enc = ENCODINGS.get(encoding)
    if enc is None:
        raise ImageDecodeError("array", f"cannot encode to unsupported encoding {encoding!r}")
    arr = np.asarray(array)
    h, w = arr.shape[:2]
    arr = arr.reshape(h, w, -1)
    if arr.shape[2] != enc.channels:
        raise ImageDecodeError(
            "array", f"{encoding} needs {enc.channels} channels, array has shape {array.shape}"
        )
    order = ">" if bigendian else "<"
    rows = arr.astype(enc.dtype.newbyteorder(order), copy=False).reshape(h, -1).view(np.uint8)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((h, row_padding), np.uint8)], axis=1)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(h), int(w)
    msg.encoding = encoding
    msg.is_bigendian = int(bigendian and enc.dtype.itemsize > 1)
    msg.step = int(rows.shape[1])
    msg.data = np.ascontiguousarray(rows).tobytes()
    return msg
