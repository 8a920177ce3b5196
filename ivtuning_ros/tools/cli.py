"""`ivtuning` command line. Each subcommand lives in its own `ivtuning_ros/tools/cmd_*.py`
module exposing `register(subparsers)`; `bench` targets live in `ivtuning_ros/bench/*.py`
modules exposing `register(bench_subparsers)`. Both are discovered here, so adding a
command never edits this file."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from ivtuning_ros import __version__


def _discover(package: str, prefix: str = "") -> list:
    pkg = importlib.import_module(package)
    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name.startswith(prefix))
    modules = [importlib.import_module(f"{package}.{name}") for name in names]
    return [m for m in modules if hasattr(m, "register")]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ivtuning",
        description="IV-tuning RGB + thermal perception: data, training, export, node tools.",
    )
    parser.add_argument("--version", action="version", version=f"ivtuning_ros {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _discover("ivtuning_ros.tools", "cmd_"):
        module.register(sub)
    bench = sub.add_parser("bench", help="benchmarks that print figures and write JSON")
    bench_sub = bench.add_subparsers(dest="bench_target", metavar="TARGET", required=True)
    for module in _discover("ivtuning_ros.bench"):
        module.register(bench_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ivtuning_ros.ros.middleware import use_large_image_profile

    use_large_image_profile()  # before any command starts DDS (inherited by its children)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as err:
        # Expected user errors (bad paths, bad configs): one clear line, no traceback.
        print(f"ivtuning {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
