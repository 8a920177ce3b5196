"""How an engine is built and run: backend, precision, cache folder, warm-up, threads."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

BACKENDS = ("auto", "tensorrt", "onnxruntime", "openvino", "torch")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def default_cache_dir() -> Path:
    """$IVTUNING_CACHE, else ~/.cache/ivtuning_ros/engines."""
    env = os.environ.get("IVTUNING_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "ivtuning_ros" / "engines"


@dataclass(frozen=True)
class EngineConfig:
    """Engine settings. `device` is "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".

    `num_threads` = 0 leaves the library default (one thread per core) in place.
    `torch_compile` applies torch.compile to the torch backend (slow first call; on a GPU
    the torch backend replays CUDA graphs either way). `calibration_dir` holds images
    (RGB + thermal pairs in any format data/ reads, or plain images) for int8.
    """

    backend: str = "auto"
    precision: str = "fp32"
    cache_dir: Path = field(default_factory=default_cache_dir)
    warmup_runs: int = 3
    num_threads: int = 0
    device: str = "auto"
    torch_compile: bool = False
    calibration_dir: Path | None = None
    calibration_images: int = 64

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(
                f"EngineConfig.backend must be one of {BACKENDS}, got {self.backend!r}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"EngineConfig.precision must be one of {PRECISIONS}, got {self.precision!r}"
            )
        if self.warmup_runs < 0:
            raise ValueError(f"EngineConfig.warmup_runs must be >= 0, got {self.warmup_runs}")
        if self.num_threads < 0:
            raise ValueError(f"EngineConfig.num_threads must be >= 0, got {self.num_threads}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(
                f"EngineConfig.device must be auto, cpu, cuda or cuda:N, got {self.device!r}"
            )
        if self.precision == "int8" and self.calibration_dir is None:
            raise ValueError(
                "precision int8 needs EngineConfig.calibration_dir (calibration images)"
            )
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser())
        if self.calibration_dir is not None:
            object.__setattr__(self, "calibration_dir", Path(self.calibration_dir).expanduser())

    def resolved_device(self) -> str:
        """The torch device string this config runs on."""
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"EngineConfig.device={self.device!r} but CUDA is not available here")
        return self.device
