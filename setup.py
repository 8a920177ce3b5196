"""pip entry point. colcon builds this package through CMakeLists.txt (ament_cmake)."""

from setuptools import find_packages, setup

setup(
    name="ivtuning_ros",
    version="0.1.0",
    description="Real-time RGB + thermal perception node: IV-tuning prompts on a frozen backbone",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["ivtuning_ros", "ivtuning_ros.*"]),
    install_requires=[
        "numpy>=1.26",
        "pyyaml>=6",
        "torch>=2.4",
        "timm>=1.0",
        "safetensors>=0.4",
    ],
    extras_require={
        # NVIDIA machines only: pulls TensorRT from NVIDIA's index (see README).
        "tensorrt": ["torch-tensorrt>=2.14,<2.15", "nvidia-modelopt>=0.47"],
    },
    entry_points={
        "console_scripts": [
            "ivtuning = ivtuning_ros.tools.cli:main",
            "ivtuning_node = ivtuning_ros.ros.node:main",
        ],
    },
)
