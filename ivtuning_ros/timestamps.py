"""ROS time stamps <-> integer nanoseconds, in one place.

`stamp_ns` reads any stamp with `sec` and `nanosec` (an rclpy message's, or one that
the rosbags library deserialised); `ns_to_stamp` builds builtin_interfaces/Time.
"""

from __future__ import annotations

from typing import Any

NS = 1_000_000_000


def stamp_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (or anything with sec, nanosec) -> nanoseconds."""
    return int(stamp.sec) * NS + int(stamp.nanosec)


def ns_to_stamp(ns: int):
    """Nanoseconds -> builtin_interfaces/Time."""
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(int(ns), NS)
    return Time(sec=sec, nanosec=nanosec)
