"""ivtuning_ros: RGB + thermal perception with IV-tuning prompts on a frozen backbone."""

import os
from pkgutil import extend_path

# Robots share their CPUs between many nodes: OpenMP threads that busy-wait between
# parallel regions made torch inference ~5x slower under load here (docs/benchmarks.md).
# Must be set before torch is imported; an explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The generated interfaces (ivtuning_ros.msg) are installed by CMake into the
# interpreter's site-packages, while a development (editable) install serves this
# package from the source tree. Merging every `ivtuning_ros` folder on sys.path into one
# package keeps `from ivtuning_ros.msg import ...` working in both install modes; on a
# colcon install both halves already share one folder and this is a no-op.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
