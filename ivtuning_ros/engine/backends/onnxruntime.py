"""ONNX Runtime backend: the CPU default.

Build: the torch.export'ed inference module -> ONNX (torch.onnx.export, dynamo exporter,
one self-contained file, batch 1). Run: an ORT session with every graph
optimisation enabled (constant folding, conv/BN/activation fusion, NCHWc layouts on x86)
and a configurable intra-op thread count.

int8: static quantisation of that graph (onnxruntime.quantization, QDQ format, int8
weights per output channel, uint8 activations: the u8s8 kernels that x86 VNNI runs),
its activation ranges calibrated on registered RGB-T pairs preprocessed as the node
does. What the measurements chose (docs/benchmarks.md, "CPU backends and precisions"):
the convolutions and matrix products and the element-wise operations between them are
quantised (`QUANTIZED_OPS`; residual additions stay fp32, they cost accuracy), the first
convolution (it sees raw pixels) stays fp32, and activation
ranges are the 99.99th percentile of the calibration values, not their extremes
(min/max lost 0.08 mAP50 on real pairs, the percentile 0.01).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from ivtuning_ros.engine.backends.base import Backend
from ivtuning_ros.engine.export import example_inputs, export_program

COMPILED = True  # builds ARTIFACT once per cache key (engine/cache.py)
ARTIFACT = "model.onnx"
INPUT_NAMES = ["rgb", "thermal"]


def library_versions() -> dict[str, str]:
    import onnx
    import onnxscript

    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxscript": onnxscript.__version__,
        "onnxruntime": ort.__version__,
    }


PRECISIONS = ("fp32", "int8")
# Convolutions and matrix products (MatMul: the ViT presets' attention), and the
# element-wise ops between them: left in fp32, each sits between a DequantizeLinear and a
# QuantizeLinear, and those conversions took a third of the int8 model's time. Add stays
# fp32: quantising the residual sums cost 0.023 mAP50 on real pairs (0.0002 without).
QUANTIZED_OPS = (
    "Conv", "Gemm", "MatMul",
    "Clip", "Relu", "Mul", "Sigmoid", "Resize", "Concat", "AveragePool",
)  # fmt: skip
CALIBRATION_PERCENTILE = 99.99
CALIBRATION_CHUNK = 8  # pairs whose activations are held at once while calibrating


def quantization_recipe(ops: tuple[str, ...]) -> str:
    """What makes an int8 engine besides its calibration images: part of its cache key."""
    return (
        f"QDQ u8/s8 per-channel, ops {','.join(ops)}, first Conv fp32, "
        f"percentile {CALIBRATION_PERCENTILE}"
    )


QUANTIZATION_RECIPE = quantization_recipe(QUANTIZED_OPS)


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(
            f"the onnxruntime backend runs {' or '.join(PRECISIONS)} (asked for {precision}); "
            "use the tensorrt backend on an NVIDIA GPU for fp16, the openvino backend for bf16"
        )


def check(precision: str, device: str) -> None:
    check_precision(precision)


def build_artifact(
    module: nn.Module,
    input_hw: tuple[int, int],
    out_path: Path,
    precision: str,
    device: str,
    calibration: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> None:
    build(module, input_hw, out_path, calibration)


def load(artifact: Path, input_hw: tuple[int, int], precision: str, num_threads: int, device: str):
    return OnnxRuntimeBackend(artifact, input_hw, num_threads, device)


def build(
    module: nn.Module,
    input_hw: tuple[int, int],
    out_path: Path,
    calibration: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    quantized_ops: tuple[str, ...] = QUANTIZED_OPS,
) -> None:
    """Export `module` to a single ONNX file at out_path; with `calibration` batches,
    quantise `quantized_ops` to int8 (static, QDQ) with activation ranges from those
    pairs."""
    if calibration is None:
        export_onnx(module, input_hw, out_path)
        return
    if not calibration:
        raise ValueError("int8 needs calibration pairs; the calibration folder gave none")
    fp32 = out_path.with_name(out_path.stem + ".fp32.onnx")
    prepared = out_path.with_name(out_path.stem + ".prepared.onnx")
    try:
        export_onnx(module, input_hw, fp32)
        from onnxruntime.quantization.shape_inference import quant_pre_process

        # shapes inferred and Conv+BN folded first, as ORT's quantisation guide asks
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_int8(prepared, out_path, calibration, quantized_ops)
    finally:
        fp32.unlink(missing_ok=True)
        prepared.unlink(missing_ok=True)


class _Pairs:
    """onnxruntime.quantization's CalibrationDataReader over preprocessed pairs, read in
    ranges (`set_range`) so that calibration holds one chunk's activations at a time."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self._feeds = [
            {"rgb": r.numpy().astype(np.float32), "thermal": t.numpy().astype(np.float32)}
            for r, t in batches
        ]
        self._items = iter(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._items = iter(self._feeds[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def _chunk(n: int) -> int:
    """The largest chunk of at most CALIBRATION_CHUNK pairs that divides `n` (ONNX
    Runtime's strided calibration wants equal chunks)."""
    return next(c for c in range(min(n, CALIBRATION_CHUNK), 0, -1) if n % c == 0)


def quantize_int8(
    fp32_path: Path,
    out_path: Path,
    calibration: list[tuple[torch.Tensor, torch.Tensor]],
    quantized_ops: tuple[str, ...] = QUANTIZED_OPS,
) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    quantize_static(
        str(fp32_path),
        str(out_path),
        _Pairs(calibration),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.Percentile,
        op_types_to_quantize=list(quantized_ops),
        nodes_to_exclude=_first_convolution(fp32_path),
        extra_options={
            # despite its name, calibration in chunks for every method (8 pairs of
            # 480x640 activations: ~2 GB; all 64 at once ran out of 24 GB)
            "CalibStridedMinMax": _chunk(len(calibration)),
            "ActivationSymmetric": False,
            "WeightSymmetric": True,
            "CalibPercentile": CALIBRATION_PERCENTILE,
        },
    )


def _first_convolution(path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [next(n.name for n in graph.node if n.op_type == "Conv")]


def export_onnx(module: nn.Module, input_hw: tuple[int, int], out_path: Path) -> None:
    program = export_program(module, input_hw)
    onnx_program = torch.onnx.export(
        program,
        example_inputs(input_hw, 1),
        dynamo=True,
        input_names=INPUT_NAMES,
        external_data=False,
        optimize=True,
        verbose=False,
    )
    onnx_program.save(str(out_path), external_data=False)


# ORT's denormals-as-zero (below) stays set on the thread that runs the session. numpy
# describes a float type once, lazily; doing it there, it would find no subnormals and
# warn ("smallest subnormal ... is zero") in the node's log. Describe them now, first.
for _dtype in (np.float16, np.float32, np.float64):
    np.finfo(_dtype)


def session_options(num_threads: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    if num_threads:
        so.intra_op_num_threads = num_threads
    # Idle worker threads sleep instead of spinning: a robot's CPU is shared with drivers
    # and other nodes. Measured on 2 shared, busy cores: p50 51 ms without spinning vs 66
    # ms with it (default model, 256x320).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Flush denormals to zero: x86 handles them in slow microcode, and values below 1e-38
    # change nothing here (outputs identical on the default model, best run 15.1 vs 16.0 ms).
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    so.log_severity_level = 3  # errors only: ORT warns about every unused initializer
    return so


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    batch_one = True

    def __init__(
        self, path: Path, input_hw: tuple[int, int], num_threads: int = 0, device: str = "cpu"
    ) -> None:
        super().__init__(input_hw)
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError(
                    f"device {device} asked for, but this onnxruntime has no CUDA provider "
                    "(pip install onnxruntime-gpu, or use the tensorrt/torch backend)"
                )
            index = int(device.split(":")[1]) if ":" in device else 0
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        self.session = ort.InferenceSession(
            str(path), session_options(num_threads), providers=providers
        )
        names = [i.name for i in self.session.get_inputs()]
        if names != INPUT_NAMES:
            raise ValueError(f"{path}: ONNX inputs are {names}, expected {INPUT_NAMES}")

    def _run(self, rgb: np.ndarray, thermal: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self.session.run(None, {"rgb": rgb, "thermal": thermal}))

    def _close(self) -> None:
        self.session = None
