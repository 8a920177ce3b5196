"""PyTorch backend: the inference module itself, eager or torch.compile'd.

It is the reference every other backend is checked against (fp32 on CPU) and the fallback
where neither TensorRT nor ONNX Runtime is installed. On a GPU the forward pass is
captured once per batch size into a CUDA graph and replayed, which removes the per-op
launch overhead that dominates small models. Nothing is cached on disk: torch.compile
output cannot be serialised, so a compiled module is rebuilt at every start.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from ivtuning_ros.engine.backends.base import Backend


def library_versions() -> dict[str, str]:
    return {"torch": torch.__version__}


def check_precision(precision: str, device: str) -> None:
    if precision == "int8":
        raise ValueError("the torch backend has no int8 path; use the tensorrt backend")
    if precision == "bf16":
        raise ValueError("the torch backend has no bf16 path; use the openvino backend")
    if precision == "fp16" and not device.startswith("cuda"):
        raise ValueError("the torch backend runs fp16 on CUDA only; use fp32 on the CPU")


check = check_precision  # the backend protocol's name (engine.load_engine)
COMPILED = False  # runs the module itself: nothing is built or cached


def create(module: nn.Module, input_hw: tuple[int, int], device: str, cfg, log) -> Backend:
    """The backend protocol's constructor for uncompiled backends (engine.load_engine)."""
    if device == "cpu" and os.environ.get("OMP_WAIT_POLICY", "").upper() == "ACTIVE":
        log(
            "engine: note: OMP_WAIT_POLICY=ACTIVE: torch's OpenMP threads busy-wait between "
            f"frames for GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', 'unset')} spins "
            "(unset: ~12 minutes); on a shared CPU they take cores from other work"
        )
    return TorchBackend(module, input_hw, device, cfg.precision,
                        compile_module=cfg.torch_compile, num_threads=cfg.num_threads)  # fmt: skip


class TorchBackend(Backend):
    name = "torch"

    def __init__(
        self,
        module: nn.Module,
        input_hw: tuple[int, int],
        device: str = "cpu",
        precision: str = "fp32",
        compile_module: bool = False,
        num_threads: int = 0,
        cuda_graphs: bool = True,
    ) -> None:
        super().__init__(input_hw)
        check_precision(precision, device)
        if num_threads:
            torch.set_num_threads(num_threads)  # process-wide: torch has no per-module pool
        self.device = torch.device(device)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.module = module.eval().to(self.device, self.dtype)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        if compile_module:
            # reduce-overhead = inductor kernels + its own CUDA graphs on a GPU.
            mode = "reduce-overhead" if self.cuda_graphs else "default"
            self.module = torch.compile(self.module, mode=mode, dynamic=False)
            self.cuda_graphs = False
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, tuple, tuple]] = {}

    def _capture(self, batch: int) -> tuple[torch.cuda.CUDAGraph, tuple, tuple]:
        h, w = self.input_hw
        static_in = (
            torch.zeros((batch, 3, h, w), device=self.device, dtype=self.dtype),
            torch.zeros((batch, 1, h, w), device=self.device, dtype=self.dtype),
        )
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up on a side stream, as capture requires
            for _ in range(3):
                self.module(*static_in)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.module(*static_in)
        return graph, static_in, tuple(static_out)

    @torch.inference_mode()
    def _run(self, rgb: np.ndarray, thermal: np.ndarray) -> tuple[np.ndarray, ...]:
        x = torch.from_numpy(rgb).to(self.device, self.dtype, non_blocking=True)
        t = torch.from_numpy(thermal).to(self.device, self.dtype, non_blocking=True)
        if self.cuda_graphs:
            if x.shape[0] not in self._graphs:
                self._graphs[x.shape[0]] = self._capture(x.shape[0])
            graph, (sx, st), outputs = self._graphs[x.shape[0]]
            sx.copy_(x)
            st.copy_(t)
            graph.replay()
        else:
            outputs = self.module(x, t)
        return tuple(_to_numpy(o) for o in outputs)

    def _close(self) -> None:
        self._graphs.clear()
        self.module = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t.detach().cpu().numpy()
