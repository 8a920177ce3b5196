"""OpenVINO backend: the fastest CPU path (bf16 where the CPU has it, else int8).

Build: the same ONNX file the ONNX Runtime backend exports (torch.onnx, dynamo, batch 1);
for int8, quantised by ONNX Runtime's static QDQ quantiser (calibration pairs, per-channel
weights) with QUANTIZED_OPS only. Run: OpenVINO compiles it for the CPU with a latency
hint and `num_threads` inference threads; `bf16` sets OpenVINO's inference precision hint,
so convolutions and matrix products run in bfloat16 on CPUs that have it (AVX-512 BF16 or
AMX; an AMD EPYC here) while outputs stay fp32; int8 runs the quantised convolutions and
matrix products on VNNI and keeps the rest in fp32.
Measured side by side on this 2-core EPYC, default model at 480x640 (docs/benchmarks.md,
"CPU backends and precisions"): bf16 ran 1.62-1.83x faster than ONNX Runtime fp32 at p50
in three runs with no mAP50 loss; int8 1.75x, ahead of ONNX Runtime's own int8 (1.39x in
the same run). int8 keeps OpenVINO's fp32 precision hint for what is not quantised: with
bf16 there it ran no faster and lost 0.007 mAP50.
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
from ivtuning_ros.engine.backends.onnxruntime import build, quantization_recipe

COMPILED = True  # builds ARTIFACT once per cache key (engine/cache.py)
ARTIFACT = "model.onnx"
PRECISIONS = ("fp32", "bf16", "int8")
# OpenVINO runs int8 wherever the QDQ graph says, element-wise ops too. Quantising the
# element-wise ops ONNX Runtime's recipe quantises (Mul, Sigmoid, Resize, Concat,
# AveragePool) cost 0.014 mAP50 on the real test pairs; convolutions, matrix products and
# their activations alone: none (+0.012), and ran faster (1.61x vs 1.46x ONNX Runtime fp32).
QUANTIZED_OPS = ("Conv", "Gemm", "MatMul", "Clip", "Relu")
QUANTIZATION_RECIPE = quantization_recipe(QUANTIZED_OPS)


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
            f"the openvino backend runs {', '.join(PRECISIONS)} (asked for {precision}); "
            "use the tensorrt backend on an NVIDIA GPU for fp16"
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
    """The ONNX file: fp32 (bf16 is applied when OpenVINO compiles it), or for int8
    quantised with `calibration`."""
    build(module, input_hw, out_path, calibration if precision == "int8" else None, QUANTIZED_OPS)


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
