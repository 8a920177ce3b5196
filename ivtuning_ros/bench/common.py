"""What only the benchmarks need besides `ivtuning_ros.measure`: machine facts."""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

from ivtuning_ros.measure import percentiles_ms, time_calls, write_json

__all__ = ["machine_info", "percentiles_ms", "time_calls", "write_json"]


def machine_info() -> dict[str, object]:
    import torch

    info: dict[str, object] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def add_int8_calibration_argument(p: argparse.ArgumentParser) -> None:
    """--int8-calibration, and --real-data: MSRS, whose training pairs are its default."""
    p.add_argument(
        "--int8-calibration",
        type=Path,
        default=None,
        metavar="DIR",
        help="registered RGB-T pairs that calibrate int8 engines (default: the real MSRS "
        "train folder when present; int8 is skipped without one)",
    )
    p.add_argument("--real-data", default=None, help="MSRS folder (default: IVTUNING_REAL_DATA)")


def int8_calibration(args: argparse.Namespace) -> Path | None:
    """The folder that calibrates int8 engines: asked for, else MSRS's train folder."""
    if args.int8_calibration is not None:
        return args.int8_calibration
    from ivtuning_ros.data.real import missing_reason, real_data_root

    if missing_reason(args.real_data) is None:
        return real_data_root(args.real_data) / "train"
    return None
