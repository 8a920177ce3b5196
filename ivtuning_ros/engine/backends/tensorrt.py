"""TensorRT backend through torch-tensorrt (dynamo): the NVIDIA GPU path.

Build: torch.export of the inference module -> torch_tensorrt.dynamo.compile ->
torch_tensorrt.save(..., output_format="exported_program"); run: torch_tensorrt.load.
Precision follows torch-tensorrt 2.14: fp32 with explicit typing; fp16 through its
rule-based autocast (layers that overflow or reduce over large domains stay fp32); int8
through NVIDIA ModelOpt post-training quantization (QDQ nodes calibrated on images) and
then compiled with int8 enabled.

torch-tensorrt is an optional extra, imported only here and only when used. Install it on
an NVIDIA machine (CUDA 13 build of torch 2.14) with:

    pip install torch-tensorrt==2.14.0   # pulls TensorRT (tensorrt-cu13) from NVIDIA's index
    pip install nvidia-modelopt==0.47.0  # only for --precision int8
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ivtuning_ros.engine.backends.base import Backend
from ivtuning_ros.engine.export import example_inputs, export_program

COMPILED = True  # builds ARTIFACT once per cache key (engine/cache.py)
ARTIFACT = "model.ep"
# What makes an int8 engine besides its calibration images: part of its cache key.
QUANTIZATION_RECIPE = "ModelOpt INT8_DEFAULT_CFG"
INSTALL_HINT = (
    "the tensorrt backend needs torch-tensorrt on an NVIDIA GPU machine: "
    "`pip install torch-tensorrt==2.14.0` (it pulls TensorRT from NVIDIA's index; add "
    "nvidia-modelopt for int8); "
    "or choose --backend onnxruntime / torch"
)


def import_torch_tensorrt():
    """Import torch_tensorrt, or raise an ImportError that says how to install it."""
    try:
        import torch_tensorrt
    except ImportError as err:
        raise ImportError(f"{INSTALL_HINT} ({err})") from err
    return torch_tensorrt


def available() -> tuple[bool, str]:
    """Whether this backend can run here, and why not."""
    try:
        import_torch_tensorrt()
    except ImportError as err:
        return False, f"torch_tensorrt is not importable ({err.__cause__ or err})"
    if not torch.cuda.is_available():
        return False, "no CUDA device"
    return True, "torch_tensorrt importable and CUDA available"


def check_usable(device: str) -> None:
    """Raise ImportError (with the install hint) or ValueError (no CUDA device) early."""
    import_torch_tensorrt()
    if not device.startswith("cuda"):
        raise ValueError(f"the tensorrt backend needs a CUDA device, got {device!r}")


def check(precision: str, device: str) -> None:
    if precision == "bf16":
        raise ValueError("the tensorrt backend runs fp32, fp16 or int8; bf16 is for openvino")
    check_usable(device)


def load(artifact: Path, input_hw: tuple[int, int], precision: str, num_threads: int, device: str):
    return TensorRTBackend(artifact, input_hw, device)


def library_versions() -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "absent"

    trt = version("tensorrt")
    return {
        "torch": torch.__version__,
        "torch_tensorrt": version("torch-tensorrt"),
        "tensorrt": trt if trt != "absent" else version("tensorrt-cu13"),
        "nvidia_modelopt": version("nvidia-modelopt"),  # int8 calibration
    }


def build(
    module: nn.Module,
    input_hw: tuple[int, int],
    out_path: Path,
    precision: str,
    device: str,
    calibration_batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> None:
    """Compile `module` for batch size 1 at `precision` and save it to out_path."""
    torch_tensorrt = import_torch_tensorrt()
    if not device.startswith("cuda"):
        raise ValueError(f"the tensorrt backend needs a CUDA device, got {device!r}")
    module = module.eval().to(device)
    inputs = list(example_inputs(input_hw, 1, device))
    settings: dict = {"min_block_size": 1, "use_explicit_typing": True}
    if precision == "int8":
        module = _quantize_int8(module, calibration_batches, device)
        from modelopt.torch.quantization.utils import export_torch_mode

        with export_torch_mode():
            program = export_program(module, input_hw, device)
        settings["enabled_precisions"] = {torch.int8}  # the QDQ path documented for 2.14
        settings.pop("use_explicit_typing")
    else:
        program = export_program(module, input_hw, device)
        if precision == "fp16":
            settings.update(enable_autocast=True, low_precision_type=torch.float16)
    compiled = torch_tensorrt.dynamo.compile(program, arg_inputs=inputs, **settings)
    torch_tensorrt.save(
        compiled, str(out_path), output_format="exported_program", arg_inputs=inputs
    )


def _quantize_int8(
    module: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None,
    device: str,
) -> nn.Module:
    if batches is None:
        raise ValueError("int8 needs calibration images (EngineConfig.calibration_dir)")
    try:
        import modelopt.torch.quantization as mtq
    except ImportError as err:
        raise ImportError(
            f"int8 needs NVIDIA ModelOpt: pip install nvidia-modelopt ({err})"
        ) from err

    def forward_loop(model: nn.Module) -> None:
        with torch.no_grad():
            for rgb, thermal in batches:
                model(rgb.to(device), thermal.to(device))

    return mtq.quantize(module, mtq.INT8_DEFAULT_CFG, forward_loop=forward_loop)


build_artifact = build  # the backend protocol's name (engine._cached_engine)


class TensorRTBackend(Backend):
    name = "tensorrt"
    batch_one = True

    def __init__(self, path: Path, input_hw: tuple[int, int], device: str) -> None:
        super().__init__(input_hw)
        torch_tensorrt = import_torch_tensorrt()
        self.device = torch.device(device)
        self.module = torch_tensorrt.load(str(path)).module()

    @torch.inference_mode()
    def _run(self, rgb: np.ndarray, thermal: np.ndarray) -> tuple[np.ndarray, ...]:
        x = torch.from_numpy(rgb).to(self.device)
        t = torch.from_numpy(thermal).to(self.device)
        outputs = self.module(x, t)
        return tuple((o.float() if o.is_floating_point() else o).cpu().numpy() for o in outputs)

    def _close(self) -> None:
        self.module = None
        torch.cuda.empty_cache()
