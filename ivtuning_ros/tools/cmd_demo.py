"""`ivtuning demo` (what `make demo` runs): synthetic night/fog bag -> node -> report."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="make a synthetic night/fog bag, replay it through the node, print the table",
        description="Renders a synthetic night/fog RGB-thermal recording into a rosbag2, "
        "starts ivtuning_node with the shipped default model, replays the bag through it "
        "over DDS and prints accuracy and latency; the report, plots and overlay frames "
        "stay in --out.",
    )
    p.add_argument("--out", type=Path, default=Path("demo_out"))
    p.add_argument("--seconds", type=float, default=20.0, help="length of the recording")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--checkpoint", help="a model of your own instead of the shipped one")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ivtuning_ros.replay.demo import run_demo

    report = run_demo(
        args.out,
        seconds=args.seconds,
        storage=args.storage,
        checkpoint=args.checkpoint,
        progress=not args.no_progress,
    )
    return 1 if report["input"]["error"] else 0
