"""`ivtuning bench inputs`: what the node spends on a pair before the engine, by format.

The node's worker decodes both images, normalises the thermal one and maps it onto the
RGB grid (ros/pipeline.pair_inputs, the very code the node runs) before every inference,
on the same CPU thread as the engine, so these milliseconds add to every result's
latency. Measured per camera format, raw and compressed, at the cameras' sizes (default
a 1280x720 RGB camera beside a 640x512 thermal core): each RGB format alone, and each
thermal format with a zero-copy rgb8 partner (so its row is the thermal stream's cost,
mapping onto the RGB grid included). The pictures are one synthetic dense-fog scene
rendered at both sizes, so the compressed streams compress as camera images do.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ivtuning_ros.bench.common import machine_info, percentiles_ms, time_calls, write_json
from ivtuning_ros.tools.argtypes import image_size

RGB_FORMATS = ("rgb8", "bgr8", "jpeg")
THERMAL_FORMATS = ("mono8", "mono16", "32FC1", "png mono16", "jpeg mono8")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inputs", help="the node's per-pair decode + thermal normalisation cost by camera format"
    )
    p.add_argument("--rgb-size", type=image_size, default=(1280, 720), help="WxH of the RGB camera")
    p.add_argument(
        "--thermal-size", type=image_size, default=(640, 512), help="WxH of the thermal camera"
    )
    p.add_argument("--runs", type=int, default=200, help="timed pairs per format")
    p.add_argument("--warmup", type=int, default=10, help="untimed pairs per format")
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    p.set_defaults(func=run)


def camera_messages(rgb_size: tuple[int, int], thermal_size: tuple[int, int]) -> dict:
    """{'rgb' | 'thermal': {format: message}} of one synthetic scene at each camera's size."""
    from ivtuning_ros.data.synthetic import render_sample
    from ivtuning_ros.ros.codec import array_to_compressed, array_to_image

    rgb = render_sample("dense_fog", seed=7, size=rgb_size).rgb
    counts = render_sample("dense_fog", seed=7, size=thermal_size, thermal_bits=16).thermal
    y16 = counts.astype(np.uint16)
    agc = ((y16 - y16.min()) * (255.0 / max(1, int(np.ptp(y16))))).astype(np.uint8)
    celsius = (y16.astype(np.float32) / 100.0 - 273.15).astype(np.float32)
    return {
        "rgb": {
            "rgb8": array_to_image(rgb, "rgb8"),
            "bgr8": array_to_image(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8"),
            "jpeg": array_to_compressed(rgb, "rgb8", "jpeg"),
        },
        "thermal": {
            "mono8": array_to_image(agc, "mono8"),
            "mono16": array_to_image(y16, "mono16"),
            "32FC1": array_to_image(celsius, "32FC1"),
            "png mono16": array_to_compressed(y16, "mono16", "png"),
            "jpeg mono8": array_to_compressed(agc, "mono8", "jpeg"),
        },
    }


def run(args: argparse.Namespace) -> int:
    from ivtuning_ros.preprocess import THERMAL_PRESETS
    from ivtuning_ros.ros.params import SPECS, node_config
    from ivtuning_ros.ros.pipeline import pair_inputs
    from ivtuning_ros.ros.sync import Frame, SyncedPair

    # thermal_norm auto beside a model trained on 8-bit AGC (the shipped one): mono8 keeps
    # agc8, mono16 gets y16_percentile, 32FC1 celsius
    cfg = node_config({name: spec.default for name, spec in SPECS.items()})
    trained_on = THERMAL_PRESETS["agc8"]
    msgs = camera_messages(args.rgb_size, args.thermal_size)
    rgb8 = msgs["rgb"]["rgb8"]

    def frame(msg) -> Frame:
        return Frame(stamp_ns=1, key_ns=1, arrival=time.monotonic(), msg=msg)

    def timed(pair: SyncedPair) -> dict:
        def once() -> None:
            pair_inputs(pair, cfg, trained_on, None, lambda key, why: None)

        return percentiles_ms(time_calls(once, args.warmup, args.runs))

    rows = [
        {"stream": "rgb", "format": name, "bytes": len(msg.data),
         **timed(SyncedPair(frame(msg), None))}
        for name, msg in msgs["rgb"].items()
    ] + [
        {"stream": "thermal", "format": name, "bytes": len(msg.data),
         **timed(SyncedPair(frame(rgb8), frame(msg)))}
        for name, msg in msgs["thermal"].items()
    ]  # fmt: skip
    rgb_wh, thermal_wh = (f"{w}x{h}" for w, h in (args.rgb_size, args.thermal_size))
    print(f"bench inputs: RGB {rgb_wh}, thermal {thermal_wh} onto the RGB grid, {args.runs} runs")
    print(f"{'stream':8} {'format':11} {'bytes':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for r in rows:
        print(
            f"{r['stream']:8} {r['format']:11} {r['bytes']:>9} "
            f"{r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} {r['p99_ms']:>8.2f}"
        )
    write_json(
        args.json,
        {
            "bench": "inputs",
            "rgb_size": list(args.rgb_size),
            "thermal_size": list(args.thermal_size),
            "runs": args.runs,
            "rows": rows,
            "machine": machine_info(),
        },
    )
    return 0
