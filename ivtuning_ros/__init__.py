"""ivtuning_ros: RGB + thermal perception with IV-tuning prompts on a frozen backbone."""

import os
from pkgutil import extend_path

# torch's OpenMP workers wait for the next parallel region by spinning for at most
# GOMP_SPINCOUNT spins (~0.1 s on these CPUs), then sleep. With OMP_WAIT_POLICY=ACTIVE
# alone (this package's earlier default) they spun ~12 minutes after any torch work: an
# engine's build checks itself against torch eager, so the node then lost a whole core
# of 2 while ONNX Runtime or OpenVINO ran (OpenVINO bf16 ran 2x slower beside it). libgomp
# reads this once, when torch loads, so it is set on import of the package; a user's own
# setting wins.
os.environ.setdefault("GOMP_SPINCOUNT", "4000000")

# The generated interfaces (ivtuning_ros.msg) are installed by CMake into the
# interpreter's site-packages, while a development (editable) install serves this
# package from the source tree. Merging every `ivtuning_ros` folder on sys.path into one
# package keeps `from ivtuning_ros.msg import ...` working in both install modes; on a
# colcon install both halves already share one folder and this is a no-op.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
