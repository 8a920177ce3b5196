"""`ivtuning replay`: play a bag through the node (or offline) and report accuracy and
latency."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from ivtuning_ros.replay.options import CLOCK_HZ


def _override(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--set expects NAME=VALUE, got {text!r}")
    return name.strip(), yaml.safe_load(value)  # YAML typing, as ros2 param set does


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "replay",
        help="replay a bag through ivtuning_node and report accuracy, latency, drops",
        description="Play BAG's RGB and thermal topics to the node over DDS, paced by the "
        "bag's timestamps, record every output topic into OUT/output_bag, match results to "
        "the ground truth by header stamp, and write OUT/report.json, latency plots and "
        "overlay frames. --offline runs the same pipeline without DDS.",
    )
    p.add_argument("bag", type=Path, help="rosbag2 folder (mcap or sqlite3) or storage file")
    p.add_argument("--gt", type=Path, help="ground truth (default: BAG/ground_truth.json)")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    p.add_argument(
        "--clock",
        type=float,
        nargs="?",
        const=CLOCK_HZ,
        default=0.0,
        metavar="HZ",
        help=f"publish the bag's time on /clock (default {CLOCK_HZ:g} Hz, as ros2 bag play "
        "--clock); the hosted node runs on it (use_sim_time), an --external one must be "
        "started with use_sim_time:=true",
    )
    p.add_argument("--topics", help="bag topics: rgb=TOPIC,thermal=TOPIC (default: params)")
    p.add_argument("--params", type=Path, help="node params file (e.g. config/ivtuning.yaml)")
    p.add_argument(
        "--set",
        dest="overrides",
        type=_override,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="node parameter on top of the params file (repeatable)",
    )
    p.add_argument("--out", type=Path, default=Path("replay_out"))
    p.add_argument("--offline", action="store_true", help="no DDS: as fast as possible")
    p.add_argument("--external", action="store_true", help="use an already running node (DDS mode)")
    p.add_argument("--node-name", default="ivtuning_node", help="with --external")
    p.add_argument("--namespace", default="/", help="the node's namespace")
    p.add_argument("--record-overlay", action="store_true", help="also record /overlay")
    p.add_argument("--overlays", type=int, default=6, help="overlay frames to save")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ivtuning_ros.replay.options import ReplayOptions, parse_topics
    from ivtuning_ros.replay.session import run_replay

    report = run_replay(
        ReplayOptions(
            bag=args.bag,
            out=args.out,
            gt=args.gt,
            rate=args.rate,
            clock_hz=args.clock,
            topics=parse_topics(args.topics),
            params=args.params,
            overrides=dict(args.overrides),
            offline=args.offline,
            external=args.external,
            node_name=args.node_name,
            namespace=args.namespace,
            record_overlay=args.record_overlay,
            overlays=args.overlays,
            progress=not args.no_progress,
        )
    )
    print(report["table"])
    print(f"report, plots and overlays in {args.out}/")
    return 1 if report["input"]["error"] else 0
