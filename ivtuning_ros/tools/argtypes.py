"""Argument types shared by the `ivtuning` subcommands and benchmarks."""

from __future__ import annotations

import argparse
from pathlib import Path


def image_size(text: str) -> tuple[int, int]:
    """'640x512' -> (640, 512): width first, as cv2 and camera drivers give it."""
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 320x256; got {text!r}")
    return int(w), int(h)


def thermal_optics(text: str) -> str:
    """A synthetic set's thermal camera choice (fixed, varied or SCALE:SIGMA), checked."""
    from ivtuning_ros.data.scene import parse_thermal_optics

    try:
        parse_thermal_optics(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def add_engine_arguments(p: argparse.ArgumentParser, backend_default: str = "auto") -> None:
    """--backend, --precision and --calibration: the engine a command builds or runs."""
    from ivtuning_ros.engine.config import BACKENDS, PRECISIONS

    p.add_argument("--backend", default=backend_default, choices=BACKENDS)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument(
        "--calibration",
        "--calibration-dir",
        dest="calibration_dir",
        type=Path,
        default=None,
        help="registered RGB-T pairs (visible/ + infrared/, vi/ + ir/ or rgb/ + thermal/) "
        "that calibrate an int8 engine",
    )
