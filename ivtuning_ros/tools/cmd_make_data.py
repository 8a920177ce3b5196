"""`ivtuning make-data`: render synthetic night/fog RGB-T scenes into a COCO + png data set."""

from __future__ import annotations

import argparse
from pathlib import Path

from ivtuning_ros.tools.argtypes import image_size, thermal_optics

TASK_NAMES = ("detection", "segmentation", "saliency")


def _splits(text: str) -> dict[str, int]:
    out = {}
    for part in text.split(","):
        name, _, count = part.partition(":")
        if not name or not count.isdigit():
            raise argparse.ArgumentTypeError(f"splits look like train:200,val:50; got {text!r}")
        out[name] = int(count)
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    from ivtuning_ros.data.conditions import CONDITIONS

    p = subparsers.add_parser(
        "make-data",
        help="render synthetic night/fog RGB-T scenes as a COCO + png data set",
        description="Render synthetic road scenes at night (people, cars, bicycles, dogs) "
        "under named conditions and write them as COCO json + png images, label masks and "
        "saliency maps, readable by `open_dataset(DIR, split=NAME)`. Either one split "
        "(--count N --split-name NAME) or several (--splits train:200,val:50,test:100); "
        "each split gets its own seed derived from --seed and its name, so splits never "
        "share scenes and separate calls into the same --out add splits. Conditions: "
        + ", ".join(CONDITIONS),
    )
    p.add_argument(
        "--condition",
        required=True,
        help="condition name(s), comma separated; samples cycle through them",
    )
    p.add_argument("--count", type=int, default=None, help="pairs in the split")
    p.add_argument("--split-name", default="train", help="split written with --count")
    p.add_argument("--splits", type=_splits, default=None, help="e.g. train:200,val:50,test:100")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=image_size, default=(320, 256), help="WxH, default 320x256")
    p.add_argument(
        "--tasks",
        default=",".join(TASK_NAMES),
        help="targets to write: detection,segmentation,saliency (boxes are always written)",
    )
    p.add_argument(
        "--thermal-bits",
        type=int,
        choices=(8, 16),
        default=8,
        help="8: AGC images 0..255 (norm agc8); 16: TLinear centikelvin counts",
    )
    p.add_argument(
        "--zoom",
        type=float,
        default=1.0,
        help="focal length multiplier: 1 = ~54 deg horizontal field of view, 1.6 = ~35 deg "
        "(objects 1.6x larger)",
    )
    p.add_argument(
        "--thermal-optics",
        type=thermal_optics,
        default="fixed",
        help="the thermal camera's sharpness. fixed: a soft core of half the image's "
        "resolution in every scene; varied: its resolution and lens blur drawn per scene, "
        "from that up to as sharp as the image (train on varied for sharper cameras); "
        "SCALE:SIGMA: detector pixels per image pixel and lens blur in detector pixels for "
        "every scene, e.g. 1:0.5",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing split")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ivtuning_ros.data.synthetic import write_synthetic

    conditions = [c.strip() for c in args.condition.split(",") if c.strip()]
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = set(tasks) - set(TASK_NAMES)
    if unknown:
        raise ValueError(f"unknown task(s) {sorted(unknown)}; choose from {', '.join(TASK_NAMES)}")
    if args.splits is not None and args.count is not None:
        raise ValueError("give either --count (with --split-name) or --splits, not both")
    if args.splits is None:
        if args.count is None:
            raise ValueError("give --count N (or --splits train:N,...)")
        splits = {args.split_name: args.count}
    else:
        splits = args.splits
    written = write_synthetic(
        args.out,
        conditions,
        splits,
        args.seed,
        args.size,
        tasks,
        args.thermal_bits,
        args.overwrite,
        zoom=args.zoom,
        thermal_optics=args.thermal_optics,
    )
    for split, path in written.items():
        print(f"{split}: {splits[split]} pairs -> {path}")
    return 0
