"""TensorRT backend (torch-tensorrt): skipped cleanly where torch_tensorrt or CUDA is absent.

On an NVIDIA machine with the extra installed (see engine/backends/tensorrt.py) these build
the default model at fp32 and fp16, compare with torch eager fp32 and check the cache.
Tolerances: fp32 scores 1e-3 / boxes 1e-2 px (TF32 off, but TensorRT picks its own
kernels); fp16 scores 2e-2 / boxes 1 px.
"""

import numpy as np
import pytest
import torch

torch_tensorrt = pytest.importorskip("torch_tensorrt")
if not torch.cuda.is_available():
    pytest.skip("TensorRT needs a CUDA device", allow_module_level=True)

from ivtuning_ros.engine.config import EngineConfig  # noqa: E402
from ivtuning_ros.engine.engine import load_engine  # noqa: E402
from ivtuning_ros.model import build_model, load_model_config  # noqa: E402
from ivtuning_ros.model.checkpoint import save_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return build_model(load_model_config("default")).eval()


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "det.safetensors", model)


@pytest.mark.parametrize(("precision", "score_atol"), [("fp32", 1e-3), ("fp16", 2e-2)])
def test_tensorrt_matches_torch_eager_and_caches(
    model, checkpoint, tmp_path, precision, score_atol
):
    rng = np.random.default_rng(0)
    rgb = rng.random((1, 3, 256, 320), dtype=np.float32)
    thermal = rng.random((1, 1, 256, 320), dtype=np.float32)
    with torch.no_grad():
        want = [
            o.numpy()
            for o in model.inference_module()(torch.from_numpy(rgb), torch.from_numpy(thermal))
        ]
    cfg = EngineConfig(backend="tensorrt", precision=precision, cache_dir=tmp_path, device="cuda")
    with load_engine(checkpoint, cfg) as engine:
        assert engine.built and engine.artifact.suffix == ".ep"
        got = engine.run(rgb, thermal)
    np.testing.assert_allclose(np.sort(got[1]), np.sort(want[1]), atol=score_atol, rtol=0)
    lines: list[str] = []
    with load_engine(checkpoint, cfg, log=lines.append) as again:
        assert not again.built and any("cache hit" in line for line in lines)
