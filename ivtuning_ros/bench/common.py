"""What only the benchmarks need besides `ivtuning_ros.measure`: machine facts."""

from __future__ import annotations

import platform

from ivtuning_ros.measure import percentiles_ms, time_calls, write_json

__all__ = ["machine_info", "percentiles_ms", "time_calls", "write_json"]


def machine_info() -> dict[str, object]:
    import torch

    info: dict[str, object] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info
