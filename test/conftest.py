"""Test-session setup: isolate DDS traffic so parallel runs never talk to each other."""

import os
import random

import numpy as np
import pytest

# Before rclpy is imported anywhere: a random domain per test session, discovery kept on
# this machine's loopback.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random().randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
# The middleware profile the node and the CLI set for themselves (ros/middleware.py), so
# test processes publish camera-sized frames the way users' processes do.
from ivtuning_ros.ros.middleware import use_large_image_profile

use_large_image_profile()


# ---------------------------------------------------------------- shared ROS fixtures
W, H = 320, 256  # the ROS tests' frame size


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """An untrained default-preset checkpoint and an engine cache, shared by the session's
    ROS test modules so the ONNX export happens once."""
    from ivtuning_ros.model import build_model, load_model_config
    from ivtuning_ros.model.checkpoint import save_checkpoint

    folder = tmp_path_factory.getbasetemp() / "ros_untrained_model"
    path = folder / "untrained.safetensors"
    if not path.is_file():
        folder.mkdir(exist_ok=True)
        save_checkpoint(path, build_model(load_model_config("default")), {"note": "untrained"})
    return path


@pytest.fixture(scope="session")
def pair():
    """A synthetic dense-fog night pair: RGB uint8 and 16-bit raw thermal counts."""
    from ivtuning_ros.data.synthetic import render_sample

    s = render_sample("dense_fog", seed=3, size=(W, H), thermal_bits=16)
    return s.rgb, s.thermal.astype(np.uint16)
