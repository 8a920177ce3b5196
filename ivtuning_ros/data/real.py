"""Where real RGB-T data lives on this machine, without ever copying it into the repo.

Tests, benchmarks and the real-data training configs find a real data set through an
option, else the environment variable ``IVTUNING_REAL_DATA``, else
``../shared/data/msrs`` (beside a checkout, from the working directory or from the
repository) when it exists. A fresh clone has none: callers skip, saying why.
Config values may write ``${IVTUNING_REAL_DATA}`` (or ``${VAR:-default}``) for the path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ENV = "IVTUNING_REAL_DATA"
DEFAULT = Path("..") / "shared" / "data" / "msrs"
_REPO = Path(__file__).resolve().parents[2]
_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def real_data_root(option: str | Path | None = None) -> Path | None:
    """The real data folder to use, or None when there is none (see module docstring)."""
    if option:
        return Path(option).expanduser()
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    for base in (Path.cwd(), _REPO):
        if (base / DEFAULT).is_dir():
            return (base / DEFAULT).resolve()
    return None


def missing_reason(option: str | Path | None = None) -> str | None:
    """Why real data cannot be used (for a clean skip), or None when it can."""
    root = real_data_root(option)
    if root is None:
        return f"no real data: set {ENV} or put MSRS at {DEFAULT} (see docs/benchmarks.md)"
    if not root.is_dir():
        return f"real data folder {root} does not exist"
    return None


def expand_path(text: str) -> str:
    """``${VAR}`` and ``${VAR:-default}`` replaced; ``${IVTUNING_REAL_DATA}`` unset falls
    back to `real_data_root()`. An unset variable without a default is an error."""

    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        value = os.environ.get(name)
        if value:
            return value
        if default is not None:
            return default
        if name == ENV and (root := real_data_root()) is not None:
            return str(root)
        raise ValueError(f"{text}: environment variable {name} is not set")

    return _VAR.sub(sub, text)
