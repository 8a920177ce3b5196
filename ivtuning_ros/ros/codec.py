"""sensor_msgs/Image <-> numpy for the encodings RGB and thermal cameras publish.

Decoding honours `step` (row padding) and `is_bigendian`, and checks the header against
the data before touching pixels, so a malformed message becomes an `ImageDecodeError`
naming the reason (counted and reported by the node) instead of a crash or a silently
wrong picture. cv_bridge does the pixel copy where it is importable (a ROS install);
otherwise the numpy path below, which the tests cover for every encoding, both byte
orders and padded rows.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def image_to_rgb(msg) -> np.ndarray:
    """RGB-camera Image -> (H, W, 3) uint8 in RGB order (mono8 is repeated to 3)."""
    enc = check_image(msg, RGB_ENCODINGS, "rgb")
    px = _pixels(msg, enc)
    if msg.encoding == "rgb8":
        return np.ascontiguousarray(px)
    if msg.encoding == "bgr8":
        return np.ascontiguousarray(px[:, :, ::-1])
    if msg.encoding == "rgba8":
        return np.ascontiguousarray(px[:, :, :3])
    if msg.encoding == "bgra8":
        return np.ascontiguousarray(px[:, :, 2::-1])
    return np.repeat(px, 3, axis=2)  # mono8


def image_to_thermal(msg) -> np.ndarray:
    """Thermal Image -> (H, W) float32 in source units (AGC counts, Y16 counts or deg C).

    Non-finite temperatures (32FC1 NaN/inf) are rejected: normalising them would give a
    silently wrong picture.
    """
    enc = check_image(msg, THERMAL_ENCODINGS, "thermal")
    t = _pixels(msg, enc)[:, :, 0].astype(np.float32)
    if enc.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(t)))
        if bad:
            raise ImageDecodeError(
                "thermal", f"{msg.encoding} image has {bad} non-finite (NaN/inf) pixels"
            )
    return t


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
