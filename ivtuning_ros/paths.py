"""Where the package's own files (config/, models/, launch/) live in each install mode."""

from __future__ import annotations

from pathlib import Path


def share_dir() -> Path:
    """The folder holding config/, models/ and launch/.

    A colcon install puts them in share/ivtuning_ros (found through ament_index); a pip
    development install serves them from the source checkout next to the package.
    """
    source_root = Path(__file__).resolve().parent.parent
    if (source_root / "config").is_dir() and (source_root / "package.xml").is_file():
        return source_root
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("ivtuning_ros"))
    except Exception as err:  # not installed through colcon either
        raise FileNotFoundError(
            f"cannot find ivtuning_ros's config/ and models/: not a source checkout "
            f"({source_root}) and not a colcon install ({err})"
        ) from err


def config_dir() -> Path:
    return share_dir() / "config"


def models_dir() -> Path:
    return share_dir() / "models"
