"""`ivtuning export`: build a checkpoint's engine ahead of time so the node starts at once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ivtuning_ros.engine.config import EngineConfig, default_cache_dir
from ivtuning_ros.tools.argtypes import add_engine_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="build (or verify) the cached inference engine for a checkpoint",
        description="Build the engine for CHECKPOINT into the engine cache, reporting progress. "
        "The node then finds it in the cache and starts without building.",
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="a .safetensors checkpoint")
    add_engine_arguments(p)
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"engine cache folder (default $IVTUNING_CACHE or {default_cache_dir()})",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--num-threads", type=int, default=0, help="0 = one per core")
    p.add_argument("--warmup-runs", type=int, default=1, help="test runs after the build")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ivtuning_ros.engine.engine import load_engine

    cfg = EngineConfig(
        backend=args.backend,
        precision=args.precision,
        cache_dir=args.cache_dir or default_cache_dir(),
        warmup_runs=args.warmup_runs,
        num_threads=args.num_threads,
        device=args.device,
        calibration_dir=args.calibration_dir,
    )
    try:
        engine = load_engine(args.checkpoint, cfg, log=print)
    except ImportError as err:  # an optional backend (tensorrt) that is not installed
        print(f"ivtuning export: error: {err}", file=sys.stderr)
        return 2
    with engine:
        where = engine.artifact or "(not cached: the torch backend runs the module directly)"
        state = "built" if engine.built else "already cached"
        print(f"export: {engine.backend_name} {cfg.precision} engine {state}: {where}")
        print(
            f"export: task {engine.task}, classes {list(engine.class_names)}, "
            f"input {engine.input_hw[0]}x{engine.input_hw[1]}, key {engine.key}"
        )
    return 0
