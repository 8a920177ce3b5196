"""A mode's worker process, started by `ivtuning bench tuning`."""

import sys
from pathlib import Path

from ivtuning_ros.bench.tuning.worker import run_worker

if len(sys.argv) != 4 or sys.argv[1] != "--worker":
    sys.exit("usage: python -m ivtuning_ros.bench.tuning --worker SPEC.json OUT.json")
run_worker(Path(sys.argv[2]), Path(sys.argv[3]))
