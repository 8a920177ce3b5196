"""`ivtuning make-bag`: a synthetic night/fog RGB-T rosbag2, or any registered-pair data
set written as one, with ground truth."""

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
        help="write an RGB-T rosbag2 (mcap/sqlite3) with ground truth: synthetic scenes or "
        "a data set's pairs (--from-dataset)",
        description="Render moving people, cars, bicycles and dogs at night into a real "
        "rosbag2: RGB (bgr8, 10 Hz) and thermal (mono16, 8.7 Hz) with driver stamp offsets, "
        "jitter and transport delays; or, with --from-dataset, write a registered-pair data "
        "set (LLVIP, M3FD, FLIR, MSRS, ...) at chosen rates, encodings and stamp offset. "
        "Ground truth for every RGB frame goes to BAG/ground_truth.json (COCO, with each "
        "image's header stamp).",
    )
    d = p.add_argument_group("from a data set")
    d.add_argument(
        "--from-dataset",
        type=Path,
        default=None,
        metavar="DIR",
        help="write this data set's pairs instead of synthetic scenes",
    )
    d.add_argument("--format", default="auto", help="its format (default: detected)")
    d.add_argument("--split", default=None, help="split inside it (e.g. test, train+test)")
    d.add_argument(
        "--blocks",
        choices=("train", "val", "test"),
        default=None,
        help="only this part of its block split (data/splits.py), e.g. the real test blocks",
    )
    d.add_argument("--limit", type=int, default=0, help="only the first N pairs")
    d.add_argument("--rate", type=float, default=10.0, help="pairs per second (RGB rate)")
    d.add_argument("--thermal-rate", type=float, default=None, help="default: --rate")
    d.add_argument(
        "--stamp-offset",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="thermal header.stamp minus its capture time (a driver's constant error)",
    )
    d.add_argument("--thermal-encoding", choices=("auto", "mono8", "mono16"), default="auto")
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
        "--compressed",
        action="store_true",
        help="record image_transport's compressed topics (TOPIC/compressed): JPEG RGB, "
        "16-bit PNG thermal",
    )
    p.add_argument(
        "--thermal-gap",
        type=_gap,
        default=None,
        metavar="START:END",
        help="silence the thermal camera over this span (seconds): the node runs degraded",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ivtuning_ros.replay.synthetic_bag import DEFAULT_TOPICS, make_bag

    if args.from_dataset is not None:
        return _from_dataset(args)

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


def _from_dataset(args: argparse.Namespace) -> int:
    from ivtuning_ros.data.dataset import open_dataset
    from ivtuning_ros.data.splits import BlockSplit, block_part
    from ivtuning_ros.replay.dataset_bag import DatasetBagSpec, dataset_bag
    from ivtuning_ros.replay.synthetic_bag import DEFAULT_TOPICS

    if args.thermal_gap is not None:
        raise ValueError("--thermal-gap applies to synthetic bags, not --from-dataset")
    data = open_dataset(args.from_dataset, args.format, split=args.split)
    if "detection" not in data.tasks:
        raise ValueError(f"{args.from_dataset}: make-bag writes detection data sets")
    if args.blocks:
        data = block_part(data, BlockSplit(), args.blocks)
    if args.limit:
        data = data.subset(range(min(args.limit, len(data))))
    spec = DatasetBagSpec(
        rate_hz=args.rate,
        thermal_rate_hz=args.thermal_rate,
        stamp_offset_s=args.stamp_offset,
        rgb_encoding=args.rgb_encoding,
        thermal_encoding=args.thermal_encoding,
        compressed=args.compressed,
        storage=args.storage,
        rgb_topic=args.rgb_topic or DEFAULT_TOPICS["rgb"],
        thermal_topic=args.thermal_topic or DEFAULT_TOPICS["thermal"],
    )
    what = f"{data.fmt} {args.from_dataset}" + (f" split {args.split}" if args.split else "")
    what += f" blocks {args.blocks}" if args.blocks else ""
    summary = dataset_bag(data, data.class_names, args.out, spec, description=what)
    print(
        f"wrote {summary.path} ({summary.storage}): {summary.rgb_frames} RGB frames on "
        f"{summary.topics['rgb']}, {summary.thermal_frames} thermal frames on "
        f"{summary.topics['thermal']} from {what}; ground truth {summary.ground_truth}"
    )
    return 0
