"""OpenVINO backend: the fastest CPU path where the CPU has bf16 arithmetic.

Build: the same ONNX file the ONNX Runtime backend exports (torch.onnx, dynamo, batch 1).
Run: OpenVINO compiles it for the CPU with a latency hint and `num_threads` inference
threads; `bf16` sets OpenVINO's inference precision hint, so convolutions and matrix
products run in bfloat16 on CPUs that have it (AVX-512 BF16 or AMX; an AMD EPYC here)
while outputs stay fp32. Measured side by side on this 2-core EPYC, default model at
480x640, two runs (docs/benchmarks.md, "CPU backends and precisions"): bf16 ran 1.62-1.83x
faster than ONNX Runtime fp32 at p50 with no mAP50 loss, ahead of ONNX Runtime's int8;
OpenVINO fp32 1.01-1.14x. OpenVINO running the int8 QDQ graph (1.48x) lost 0.014 mAP50
on the real test pairs, so int8 stays on ONNX Runtime.
Compiled blobs are kept beside the cached ONNX file (OpenVINO's model cache), so a node
restart compiles in milliseconds.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ivtuning_ros.engine.backends.base import Backend

COMPILED = True  # builds ARTIFACT once per cache key (engine/cache.py)
ARTIFACT = "model.onnx"
PRECISIONS = ("fp32", "bf16")


def library_versions() -> dict[str, str]:
    import onnx
    import openvino

    return {"torch": torch.__version__, "onnx": onnx.__version__, "openvino": openvino.__version__}


@functools.lru_cache(maxsize=1)
def has_bf16() -> bool:
    """Whether OpenVINO finds bf16 arithmetic on this CPU."""
    import openvino

    caps = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "BF16" in caps


def check(precision: str, device: str) -> None:
    try:
        import openvino  # noqa: F401
    except ImportError as err:
        raise ValueError(
            f"backend openvino needs the openvino package (pip install openvino): {err}"
        ) from None
    if not device.startswith("cpu"):
        raise ValueError(f"the openvino backend runs on the CPU (device is {device})")
    if precision not in PRECISIONS:
        raise ValueError(
            f"the openvino backend runs {' or '.join(PRECISIONS)} (asked for {precision}); "
            "int8 runs on the onnxruntime backend"
        )
    if precision == "bf16" and not has_bf16():
        raise ValueError(
            "precision bf16: this CPU has no bf16 arithmetic (AVX-512 BF16 or AMX); OpenVINO "
            "would emulate it slowly: use fp32"
        )


def build_artifact(
    module: nn.Module,
    input_hw: tuple[int, int],
    out_path: Path,
    precision: str,
    device: str,
    calibration: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> None:
    """The ONNX file (precision is applied when OpenVINO compiles it)."""
    from ivtuning_ros.engine.backends.onnxruntime import export_onnx

    export_onnx(module, input_hw, out_path)


def load(artifact: Path, input_hw: tuple[int, int], precision: str, num_threads: int, device: str):
    return OpenVinoBackend(artifact, input_hw, precision, num_threads)


class OpenVinoBackend(Backend):
    name = "openvino"
    batch_one = True

    def __init__(
        self, path: Path, input_hw: tuple[int, int], precision: str = "fp32", num_threads: int = 0
    ) -> None:
        super().__init__(input_hw)
        import openvino

        core = openvino.Core()
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "CACHE_DIR": str(Path(path).parent / "openvino_cache"),
        }
        if num_threads:
            config["INFERENCE_NUM_THREADS"] = int(num_threads)
        self.compiled = core.compile_model(str(path), "CPU", config)
        names = [p.get_any_name() for p in self.compiled.inputs]
        if names != ["rgb", "thermal"]:
            raise ValueError(f"{path}: model inputs are {names}, expected ['rgb', 'thermal']")
        self.request = self.compiled.create_infer_request()

    def _run(self, rgb: np.ndarray, thermal: np.ndarray) -> tuple[np.ndarray, ...]:
        out = self.request.infer({"rgb": rgb, "thermal": thermal})
        return tuple(np.array(out[o]) for o in self.compiled.outputs)

    def _close(self) -> None:
        self.request = None
        self.compiled = None
