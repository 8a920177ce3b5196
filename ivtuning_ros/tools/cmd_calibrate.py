"""`ivtuning calibrate`: estimate the thermal -> RGB mapping and write it as node parameters."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

NODE = "ivtuning_node"
SLOP_NS = 50_000_000  # a bag's thermal frame pairs with an RGB frame within 50 ms


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="estimate the thermal -> RGB mapping (homography or affine) of a camera rig",
        description="Estimate where the thermal camera's pixels fall in the RGB image, from "
        "ordinary scenes (ECC on normalised gradients, no target needed) or a heated "
        "checkerboard seen by both cameras, and write thermal_homography (or "
        "thermal_affine) into a node parameters YAML: the node, `ivtuning eval "
        "--thermal-geometry` and training (a data source's thermal_geometry) apply it the "
        "same way. Give pairs spread over a drive (different scenes), not one scene. On "
        "failure nothing is written and the old mapping stays.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--pairs",
        type=Path,
        help="folder with vi/ + ir/, visible/ + infrared/ or rgb/ + thermal/ images paired by name",
    )
    src.add_argument("--bag", type=Path, help="a rosbag2 folder (or .mcap / .db3) of the rig")
    p.add_argument("--rgb-topic", default=None, help="bag RGB topic (default: the node's)")
    p.add_argument("--thermal-topic", default=None, help="bag thermal topic (default: the node's)")
    p.add_argument(
        "--method",
        choices=("natural", "pattern"),
        default="natural",
        help="natural scenes (ECC) or a heated checkerboard",
    )
    p.add_argument("--model", choices=("homography", "affine"), default="homography")
    p.add_argument("--pattern", default="9x6", help="checkerboard inner corners, COLSxROWS")
    p.add_argument(
        "--frames", type=int, default=20, help="pairs to use, spread evenly over the input"
    )
    p.add_argument(
        "--min-frames", type=int, default=3, help="fail unless this many pairs give an estimate"
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="node parameters YAML to write (updated when it exists)",
    )
    p.add_argument("--node-name", default=NODE, help="the node's name in the YAML")
    p.set_defaults(func=run)


def folder_pairs(folder: Path, frames: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from ivtuning_ros.data.formats.common import read_rgb, read_thermal
    from ivtuning_ros.engine.calibration import calibration_pairs
    from ivtuning_ros.evaluation.evaluate import spread_indices

    paths = calibration_pairs(folder)
    return [
        (read_rgb(r), read_thermal(t))
        for r, t in (paths[i] for i in spread_indices(len(paths), frames))
    ]


def bag_pairs(
    bag: Path, topics: dict[str, str], frames: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """RGB frames spread over the bag, each with the thermal frame nearest in stamp
    (within 50 ms; others are skipped)."""
    from rclpy.serialization import deserialize_message

    from ivtuning_ros.evaluation.evaluate import spread_indices
    from ivtuning_ros.replay.bagio import CAMERA_TYPES, open_stream
    from ivtuning_ros.replay.dds import message_class
    from ivtuning_ros.ros.codec import image_to_rgb, image_to_thermal
    from ivtuning_ros.timestamps import stamp_ns

    roles = ("rgb", "thermal")
    with open_stream(bag, topics, {r: CAMERA_TYPES for r in roles}) as stream:
        types = {r: message_class(c.msgtype) for r, c in stream.connections.items()}
        stamps: dict[str, list[int]] = {r: [] for r in roles}
        for role, _, raw in stream.messages():
            stamps[role].append(stamp_ns(deserialize_message(raw, types[role]).header.stamp))
    thermal = np.array(sorted(stamps["thermal"]), np.int64)
    if not stamps["rgb"] or not len(thermal):
        raise ValueError(f"{bag}: no messages on {topics['rgb']} or {topics['thermal']}")
    wanted: dict[int, int] = {}  # rgb stamp -> thermal stamp
    rgb = sorted(stamps["rgb"])
    for i in spread_indices(len(rgb), frames):
        s = rgb[i]
        j = int(np.argmin(np.abs(thermal - s)))
        if abs(int(thermal[j]) - s) <= SLOP_NS:
            wanted[s] = int(thermal[j])
    images: dict[tuple[str, int], np.ndarray] = {}
    keep = {("rgb", s) for s in wanted} | {("thermal", t) for t in wanted.values()}
    with open_stream(bag, topics, {r: CAMERA_TYPES for r in roles}) as stream:
        for role, _, raw in stream.messages():
            msg = deserialize_message(raw, types[role])
            key = (role, stamp_ns(msg.header.stamp))
            if key in keep and key not in images:
                images[key] = image_to_rgb(msg) if role == "rgb" else image_to_thermal(msg)[0]
    return [(images[("rgb", s)], images[("thermal", t)]) for s, t in sorted(wanted.items())]


def write_params(out: Path, node: str, params: dict[str, list[float]]) -> None:
    """Put the mapping into `out` (a node parameters YAML), keeping whatever else it
    holds; the thermal crop is cleared (the mapping covers the whole thermal image)."""
    import yaml

    doc = yaml.safe_load(out.read_text()) if out.is_file() else None
    doc = doc if isinstance(doc, dict) else {}
    section = doc.setdefault(node, {}).setdefault("ros__parameters", {})
    section.update({"thermal_crop": [0, 0, 0, 0], **params})
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
    tmp.replace(out)


def run(args: argparse.Namespace) -> int:
    from ivtuning_ros.registration import CalibrationError, calibrate, corners_of
    from ivtuning_ros.ros.params import SPECS

    try:
        cols, _, rows = args.pattern.lower().partition("x")
        pattern = (int(cols), int(rows))
    except ValueError:
        print(f"calibrate: --pattern must be COLSxROWS, got {args.pattern!r}", file=sys.stderr)
        return 2
    if args.frames < 1 or args.min_frames < 1:
        print("calibrate: --frames and --min-frames must be >= 1", file=sys.stderr)
        return 2
    try:
        if args.pairs is not None:
            pairs = folder_pairs(args.pairs, args.frames)
        else:
            topics = {
                "rgb": args.rgb_topic or "/" + str(SPECS["rgb_topic"].default).lstrip("/"),
                "thermal": args.thermal_topic
                or "/" + str(SPECS["thermal_topic"].default).lstrip("/"),
            }
            pairs = bag_pairs(args.bag, topics, args.frames)
        cal = calibrate(pairs, args.method, args.model, pattern, args.min_frames)
    except (CalibrationError, ValueError, FileNotFoundError) as err:
        kept = f"; {args.out} left as it was" if args.out.is_file() else ""
        print(f"calibrate: {err}{kept}", file=sys.stderr)
        return 1
    write_params(args.out, args.node_name, cal.params())
    th_hw, rgb_hw = pairs[0][1].shape[:2], pairs[0][0].shape[:2]
    resize = np.diag([rgb_hw[1] / th_hw[1], rgb_hw[0] / th_hw[0], 1.0])
    moved = np.linalg.norm(corners_of(cal.matrix, th_hw) - corners_of(resize, th_hw), axis=1)
    print(
        f"calibrate: {cal.model} from {cal.frames_used} of {len(pairs)} pairs ({cal.method}); "
        f"the frames agree within {cal.spread_px:.1f} px (median); thermal corners moved "
        f"{moved.mean():.1f} px from a plain resize; wrote {args.out} "
        f"({next(iter(cal.params()))})"
    )
    for why in cal.failures[:5]:
        print(f"  not used: {why}")
    return 0
