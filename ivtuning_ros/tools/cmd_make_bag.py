"""`ivtuning make-bag`: a synthetic night/fog RGB-T rosbag2 with ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from ivtuning_ros.data.conditions import CONDITIONS
from ivtuning_ros.tools.argtypes import image_size


def _gap(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition(":")
    try:
        return float(lo), float(hi)
    except ValueError:
        raise argparse.ArgumentTypeError(f"gap must be START:END seconds, got {text!r}") from None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "make-bag",
        help="write a synthetic RGB-T rosbag2 (mcap/sqlite3) with ground truth",
        description="Render moving people, cars, bicycles and dogs at night into a real "
        "rosbag2: RGB (bgr8, 10 Hz) and thermal (mono16, 8.7 Hz) with driver stamp offsets, "
        "jitter and transport delays; ground truth for every RGB frame in "
        "BAG/ground_truth.json (COCO, with each image's header stamp).",
    )
    p.add_argument("--out", type=Path, required=True, help="bag folder to create")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--condition", choices=sorted(CONDITIONS), default="light_fog")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=image_size, default=None, help="WIDTHxHEIGHT (default 320x256)")
    p.add_argument("--rgb-encoding", choices=("bgr8", "rgb8"), default="bgr8")
    p.add_argument("--rgb-topic", default=None, help="default: the node's rgb_topic")
    p.add_argument("--thermal-topic", default=None, help="default: the node's thermal_topic")
    p.add_argument(
        "--compressed", action="store_true",
        help="record image_transport's compressed topics (TOPIC/compressed): JPEG RGB, "
        "16-bit PNG thermal",
    )  # fmt: skip
    p.add_argument(
        "--thermal-gap", type=_gap, default=None, metavar="START:END",
        help="silence the thermal camera over this span (seconds): the node runs degraded",
    )  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ivtuning_ros.replay.synthetic_bag import DEFAULT_TOPICS, make_bag

    kwargs = {"size": args.size} if args.size else {}
    summary = make_bag(
        args.out,
        storage=args.storage,
        condition=args.condition,
        seconds=args.seconds,
        seed=args.seed,
        rgb_topic=args.rgb_topic or DEFAULT_TOPICS["rgb"],
        thermal_topic=args.thermal_topic or DEFAULT_TOPICS["thermal"],
        rgb_encoding=args.rgb_encoding,
        thermal_gap=args.thermal_gap,
        compressed=args.compressed,
        **kwargs,
    )
    print(
        f"wrote {summary.path} ({summary.storage}): {summary.rgb_frames} RGB frames on "
        f"{summary.topics['rgb']}, {summary.thermal_frames} thermal frames on "
        f"{summary.topics['thermal']}, ground truth {summary.ground_truth}"
    )
    return 0
