"""Test-session setup: isolate DDS traffic so parallel runs never talk to each other."""

import os
import random

# Before rclpy is imported anywhere: a random domain per test session, discovery kept on
# this machine's loopback.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random().randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
# As ivtuning_ros/__init__.py does, but before any test module imports torch first.
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")
