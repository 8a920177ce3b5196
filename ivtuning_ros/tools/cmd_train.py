"""`ivtuning train`: train a model from a train config (see ivtuning_ros/train/config.py)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a detection/segmentation/saliency model from a YAML config",
        description="Train the prompter and head (or everything, by the config's mode). "
        "Validates every epoch and keeps the best checkpoint by the validation split. "
        "Multi-process: torchrun --nproc_per_node N -m ivtuning_ros.tools.cli train ...",
    )
    p.add_argument("--config", type=Path, required=True, help="train config YAML")
    p.add_argument(
        "--out", type=Path, default=None, help="run folder (default: runs/<config name>)"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ivtuning_ros.train.config import load_train_config
    from ivtuning_ros.train.trainer import train

    cfg = load_train_config(args.config)
    out = args.out or Path("runs") / args.config.stem
    result = train(cfg, out, resume=args.resume, progress=not args.quiet)
    if result.rank == 0:
        print(
            f"best checkpoint {result.best_checkpoint}: epoch {result.best_epoch}, "
            f"validation {result.select_metric} {result.best_metric:.4f}"
        )
        if result.test_metrics is not None:
            shown = {k: round(v, 4) for k, v in result.test_metrics.items() if "/" not in k}
            print(f"test (best checkpoint): {shown}")
    return 0
