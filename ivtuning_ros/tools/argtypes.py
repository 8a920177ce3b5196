"""Argument types shared by the `ivtuning` subcommands and benchmarks."""

from __future__ import annotations

import argparse


def image_size(text: str) -> tuple[int, int]:
    """'640x512' -> (640, 512): width first, as cv2 and camera drivers give it."""
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 320x256; got {text!r}")
    return int(w), int(h)
