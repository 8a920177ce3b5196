"""A camera-driver-like publisher in its own process, for `ivtuning bench node`.

Camera drivers are separate processes: a frame reaches the node through the middleware's
inter-process path (shared memory or UDP), never through the intra-process shortcut a
publisher beside the node would get. This process publishes an RGB image (bgr8, or JPEG
on `<topic>/compressed`) and a 16-bit thermal image (mono16, or PNG) at a fixed rate
with sensor-data QoS (best effort, keep last 5, as camera drivers publish), stamped at
publication, and writes the stamps it sent to a JSON file when done.

    python -m ivtuning_ros.bench.camera --rgb 1280x720 --thermal 640x512 --rate 30 \\
        --seconds 10 --namespace ivtuning_bench --out sent.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DRIVER_QOS_DEPTH = 5  # rclpy's qos_profile_sensor_data: best effort, keep last 5


def frames(rgb_wh: tuple[int, int], thermal_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A real-looking pair at the asked sizes: the synthetic dense-fog night scene, its
    thermal image as 16-bit counts (a radiometric core's Y16)."""
    import cv2

    from ivtuning_ros.data.synthetic import render_sample

    s = render_sample("dense_fog", seed=7, size=rgb_wh, thermal_bits=16)
    thermal = cv2.resize(s.thermal, thermal_wh, interpolation=cv2.INTER_LINEAR)
    return s.rgb, np.clip(thermal, 0, 65535).astype(np.uint16)


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rgb", type=_size, default=(1280, 720))
    p.add_argument("--thermal", type=_size, default=(640, 512))
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--compressed", action="store_true")
    p.add_argument("--namespace", default="")
    p.add_argument("--reliable", action="store_true", help="reliable QoS instead")
    p.add_argument("--match-timeout", type=float, default=60.0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Header

    from ivtuning_ros.ros.codec import array_to_compressed, array_to_image
    from ivtuning_ros.ros.inputs import bare_node
    from ivtuning_ros.ros.middleware import use_large_image_profile
    from ivtuning_ros.timestamps import ns_to_stamp

    use_large_image_profile()  # a driver launched by our launch file gets it too
    rgb, thermal = frames(args.rgb, args.thermal)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    headers = {"rgb": Header(frame_id="rgb_camera"), "thermal": Header(frame_id="thermal_camera")}
    if args.compressed:
        msgs = {
            "rgb": array_to_compressed(bgr, "bgr8", "jpeg", headers["rgb"]),
            "thermal": array_to_compressed(thermal, "mono16", "png", headers["thermal"]),
        }
        msg_type, suffix = CompressedImage, "/compressed"
    else:
        msgs = {
            "rgb": array_to_image(bgr, "bgr8", headers["rgb"]),
            "thermal": array_to_image(thermal, "mono16", headers["thermal"]),
        }
        msg_type, suffix = Image, ""
    rclpy.init()
    node = bare_node("ivtuning_bench_camera", args.namespace)
    qos = QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=DRIVER_QOS_DEPTH,
        reliability=ReliabilityPolicy.RELIABLE if args.reliable else ReliabilityPolicy.BEST_EFFORT,
    )
    pubs = {cam: node.create_publisher(msg_type, f"{cam}/image_raw{suffix}", qos) for cam in msgs}
    deadline = time.monotonic() + args.match_timeout
    while any(p.get_subscription_count() == 0 for p in pubs.values()):
        if time.monotonic() > deadline:
            print("camera: no subscriber matched", file=sys.stderr)
            return 3
        time.sleep(0.05)
    time.sleep(0.5)  # both directions of discovery settle
    n = max(1, round(args.rate * args.seconds))
    stamps: list[int] = []
    start = time.perf_counter()
    for i in range(n):
        wait = start + i / args.rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        stamp = time.time_ns()
        for cam, msg in msgs.items():
            msg.header.stamp = ns_to_stamp(stamp)
            pubs[cam].publish(msg)
        stamps.append(stamp)
    sent_s = time.perf_counter() - start
    time.sleep(0.5)  # let the last frames leave before the participant goes
    sizes = {f"{cam}_bytes": len(bytes(msg.data)) for cam, msg in msgs.items()}
    args.out.write_text(json.dumps({"stamps": stamps, "sent_s": sent_s, **sizes}))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
