"""ivtuning_ros: RGB + thermal perception with IV-tuning prompts on a frozen backbone."""

import os
from pkgutil import extend_path

# OpenMP worker threads wait by spinning, not by sleeping: with sleeping workers the node
# stalled 1-4 s on some frames of a 4x-rate burst on these (virtualised) machines, 8 runs
# in 9 (test_ros_node overload test; 0 in 7 with ACTIVE). libgomp reads this once, when
# torch loads, so it is set on import of the package; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

# The generated interfaces (ivtuning_ros.msg) are installed by CMake into the
# interpreter's site-packages, while a development (editable) install serves this
# package from the source tree. Merging every `ivtuning_ros` folder on sys.path into one
# package keeps `from ivtuning_ros.msg import ...` working in both install modes; on a
# colcon install both halves already share one folder and this is a no-op.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
