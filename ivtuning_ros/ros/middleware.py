"""The middleware profile that lets camera-sized frames arrive from other processes.

Fast DDS (the default RMW) sends a sample that does not fit its small default
shared-memory segment over fragmented UDP, where best-effort readers lose whole 720p
frames (measured: 7 of 150 pairs delivered). `config/fastdds_large_images.xml` gives it a
64 MiB segment. `use_large_image_profile()` points FASTDDS_DEFAULT_PROFILES_FILE at it
before rclpy starts, unless the user chose a profile or another RMW: the user's own
settings always win. It must run before the first DDS participant is created.
"""

from __future__ import annotations

import os
from pathlib import Path

PROFILE_NAME = "fastdds_large_images.xml"
PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
# Fast DDS 2.x read this one; a user who set it has a profile of their own
LEGACY_PROFILE_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"
FASTDDS_RMWS = ("", "rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")


def profile_path() -> Path:
    from ivtuning_ros.paths import config_dir

    return config_dir() / PROFILE_NAME


def use_large_image_profile(environ: dict[str, str] | None = None) -> str | None:
    """Set the shipped Fast DDS profile in `environ` (default: this process's) when the
    RMW is Fast DDS and no profile is set; returns the path set, or None if left alone."""
    env = os.environ if environ is None else environ
    if env.get("RMW_IMPLEMENTATION", "") not in FASTDDS_RMWS:
        return None
    if env.get(PROFILE_ENV) or env.get(LEGACY_PROFILE_ENV):
        return None
    path = profile_path()
    if not path.is_file():
        return None
    env[PROFILE_ENV] = str(path)
    return str(path)
