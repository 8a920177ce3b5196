"""Backends on a small real detection-shaped module: torch eager / torch.compile and ONNX
Runtime against the module itself, plus the input and config checks they share.

The full model goes through the same backends in test_engine_onnxruntime.py; here a
small module keeps the torch.compile parity check (inductor compiles in ~15 s) cheap.
"""

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from ivtuning_ros.engine.backends import onnxruntime as ort_backend
from ivtuning_ros.engine.backends.torch_eager import TorchBackend
from ivtuning_ros.engine.config import EngineConfig

HW = (64, 96)


class SmallDetector(nn.Module):
    """Conv features -> per-cell boxes and class scores -> fixed top-K, like the real head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(4, 16, 3, stride=4, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.head = nn.Conv2d(16, 4 + 3, 1)

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor):
        f = torch.relu(self.bn(self.stem(torch.cat([rgb, thermal], 1))))
        out = self.head(f).flatten(2).transpose(1, 2)  # (B, cells, 7)
        boxes = out[..., :4].sigmoid() * 64
        score, cls = out[..., 4:].sigmoid().max(-1)
        top, idx = score.topk(20, dim=1)
        return torch.gather(boxes, 1, idx[..., None].expand(-1, -1, 4)), top, cls.gather(1, idx)


@pytest.fixture(scope="module")
def module():
    m = SmallDetector().eval()
    with torch.no_grad():  # non-trivial BN statistics, so fusion errors would show
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 2.0)
    return m


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(1)
    return (
        rng.random((3, 3, *HW), dtype=np.float32),
        rng.random((3, 1, *HW), dtype=np.float32),
    )


def reference(module, inputs):
    with torch.no_grad():
        return [o.numpy() for o in module(*(torch.from_numpy(a) for a in inputs))]


def assert_outputs_close(got, want, atol):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        if np.issubdtype(w.dtype, np.integer):
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=0, atol=atol)


def test_torch_eager_backend_matches_module(module, inputs):
    backend = TorchBackend(module, HW)
    assert_outputs_close(backend.run(*inputs), reference(module, inputs), atol=0)
    backend.close()


def test_torch_compile_backend_matches_eager(module, inputs):
    backend = TorchBackend(module, HW, compile_module=True)
    # fp32 tolerance: inductor reorders reductions; 1e-4 abs on boxes (px) and scores.
    assert_outputs_close(backend.run(*inputs), reference(module, inputs), atol=1e-4)


def test_onnxruntime_backend_matches_eager_with_any_batch(module, inputs, tmp_path):
    path = tmp_path / "m.onnx"
    ort_backend.build(module, HW, path)
    backend = ort_backend.OnnxRuntimeBackend(path, HW, num_threads=1)
    want = reference(module, inputs)
    assert_outputs_close(backend.run(*inputs), want, atol=1e-4)  # batch 3: image by image
    one = backend.run(inputs[0][:1], inputs[1][:1])
    assert_outputs_close(one, [w[:1] for w in want], atol=1e-4)


def test_openvino_backend_matches_eager_in_fp32_and_bf16(module, inputs, tmp_path):
    """OpenVINO compiles the same ONNX file; bf16 (where the CPU has it) stays within the
    engine's bf16 tolerance of the module, its integer outputs (top-K classes) may flip
    only where scores tie at bf16 resolution."""
    from ivtuning_ros.engine.backends import openvino as ov_backend

    path = tmp_path / "m.onnx"
    ov_backend.build_artifact(module, HW, path, "fp32", "cpu")
    want = reference(module, inputs)
    fp32 = ov_backend.load(path, HW, "fp32", 1, "cpu")
    assert_outputs_close(fp32.run(*inputs), want, atol=1e-4)
    fp32.close()
    with pytest.raises(ValueError, match=r"runs fp32, bf16, int8 .* tensorrt backend"):
        ov_backend.check("fp16", "cpu")
    with pytest.raises(ValueError, match="runs on the CPU"):
        ov_backend.check("fp32", "cuda")
    if not ov_backend.has_bf16():
        with pytest.raises(ValueError, match="no bf16 arithmetic"):
            ov_backend.check("bf16", "cpu")
        return
    ov_backend.check("bf16", "cpu")
    bf16 = ov_backend.load(path, HW, "bf16", 1, "cpu")
    got = bf16.run(*inputs)
    np.testing.assert_allclose(np.sort(got[1], -1), np.sort(want[1], -1), atol=5e-2)
    # boxes: near-tied scores may swap places in the top-K, so each box is compared with
    # the reference box nearest to it (bf16 keeps 8 bits: 0.5 px of 64)
    nearest = np.abs(got[0][:, :, None, :] - want[0][:, None, :, :]).max(-1).min(-1)
    assert nearest.max() <= 0.5


def test_backends_refuse_wrong_inputs(module):
    backend = TorchBackend(module, HW)
    good_rgb = np.zeros((1, 3, *HW), np.float32)
    good_t = np.zeros((1, 1, *HW), np.float32)
    with pytest.raises(ValueError, match="rgb_batch must be"):
        backend.run(np.zeros((1, 3, 32, 32), np.float32), good_t)
    with pytest.raises(ValueError, match="thermal_batch must be"):
        backend.run(good_rgb, np.zeros((1, 3, *HW), np.float32))
    with pytest.raises(ValueError, match="batch sizes"):
        backend.run(np.zeros((2, 3, *HW), np.float32), good_t)


def test_precision_checks_name_the_alternative():
    with pytest.raises(ValueError, match="CUDA only"):
        TorchBackend(SmallDetector(), HW, precision="fp16")
    with pytest.raises(ValueError, match="tensorrt"):
        TorchBackend(SmallDetector(), HW, precision="int8")
    with pytest.raises(ValueError, match=r"runs fp32 or int8 .* tensorrt backend"):
        ort_backend.check_precision("fp16")
    ort_backend.check_precision("int8")


def test_engine_config_validation(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="backend"):
        EngineConfig(backend="tflite")
    with pytest.raises(ValueError, match="precision"):
        EngineConfig(precision="fp8")
    with pytest.raises(ValueError, match="calibration_dir"):
        EngineConfig(precision="int8")
    with pytest.raises(ValueError, match="device"):
        EngineConfig(device="gpu")
    with pytest.raises(ValueError, match="warmup_runs"):
        EngineConfig(warmup_runs=-1)
    monkeypatch.setenv("IVTUNING_CACHE", str(tmp_path / "c"))
    assert EngineConfig().cache_dir == tmp_path / "c"
    monkeypatch.delenv("IVTUNING_CACHE")
    assert EngineConfig().cache_dir.parts[-3:] == (".cache", "ivtuning_ros", "engines")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            EngineConfig(device="cuda").resolved_device()


def test_tensorrt_absent_gives_install_hint_and_auto_falls_back():
    pytest.importorskip("onnxruntime")
    from ivtuning_ros.engine.backends import tensorrt
    from ivtuning_ros.engine.engine import choose_backend

    try:
        import torch_tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install torch-tensorrt"):
            tensorrt.check_usable("cuda")
        ok, why = tensorrt.available()
        assert not ok and "not importable" in why
    backend, why = choose_backend(EngineConfig(), "cpu")
    assert backend == "onnxruntime" and why.startswith("auto: no tensorrt")
    assert choose_backend(EngineConfig(backend="torch"), "cpu")[0] == "torch"


@pytest.mark.parametrize("bf16", [True, False])
def test_onnxruntime_fp32_users_hear_of_the_faster_openvino_path(bf16, monkeypatch):
    """bf16 where the CPU has it, else int8 (which needs calibration pairs)."""
    from ivtuning_ros.engine.backends import openvino
    from ivtuning_ros.engine.engine import faster_cpu_hint

    monkeypatch.setattr(openvino, "has_bf16", lambda: bf16)  # the other kind of CPU
    hint = faster_cpu_hint(EngineConfig(), "onnxruntime", "cpu")
    assert hint is not None
    assert ("precision bf16" in hint) == bf16
    assert ("precision int8 and int8_calibration_dir" in hint) == (not bf16)
    ov_bf16 = EngineConfig(backend="openvino", precision="bf16")
    assert faster_cpu_hint(ov_bf16, "openvino", "cpu") is None
    assert faster_cpu_hint(EngineConfig(), "onnxruntime", "cuda") is None


def test_calibration_folder_pairs_and_preprocesses(tmp_path):
    import cv2

    from ivtuning_ros.engine.calibration import (
        calibration_batches,
        calibration_fingerprint,
        calibration_pairs,
    )
    from ivtuning_ros.preprocess import THERMAL_PRESETS

    (tmp_path / "visible").mkdir()
    (tmp_path / "infrared").mkdir()
    for i in range(3):
        cv2.imwrite(
            str(tmp_path / "visible" / f"{i:02d}.jpg"), np.full((48, 64, 3), 40 * i, np.uint8)
        )
        if i < 2:  # the third RGB image has no thermal partner: skipped
            cv2.imwrite(
                str(tmp_path / "infrared" / f"{i:02d}.png"), np.full((48, 64), 1000 * i, np.uint16)
            )
    assert [a.stem for a, _ in calibration_pairs(tmp_path)] == ["00", "01"]
    norm = THERMAL_PRESETS["y16_percentile"]
    batches = list(calibration_batches(tmp_path, HW, norm, limit=5))
    assert len(batches) == 2
    rgb, thermal = batches[1]
    assert rgb.shape == (1, 3, *HW) and thermal.shape == (1, 1, *HW)
    assert float(thermal.min()) >= 0.0 and float(thermal.max()) <= 1.0
    assert calibration_fingerprint(tmp_path, 5) != calibration_fingerprint(tmp_path, 1)
    with pytest.raises(FileNotFoundError, match="visible/ \\+ infrared/"):
        calibration_pairs(tmp_path / "visible")


def test_build_verification_refuses_an_engine_that_disagrees(module, tmp_path):
    from ivtuning_ros.engine.engine import EngineInfo, verify_against_module
    from ivtuning_ros.preprocess import THERMAL_PRESETS

    info = EngineInfo("detection", ("a", "b", "c"), HW, THERMAL_PRESETS["agc8"])
    path = tmp_path / "m.onnx"
    ort_backend.build(module, HW, path)
    backend = ort_backend.OnnxRuntimeBackend(path, HW)
    assert verify_against_module(backend, module, info, "fp32", "cpu") < 1e-5
    other = SmallDetector().eval()  # same architecture, different BN statistics
    with pytest.raises(RuntimeError, match="disagrees with torch eager"):
        verify_against_module(backend, other, info, "fp32", "cpu")


def test_onnxruntime_int8_engine_is_quantised_and_close_to_fp32(module, inputs, tmp_path):
    """A tiny int8 engine: static QDQ quantisation calibrated on pairs, checked against
    the fp32 module with the int8 tolerance the engine build uses."""
    import onnx

    from ivtuning_ros.engine.engine import EngineInfo, verify_against_module
    from ivtuning_ros.preprocess import THERMAL_PRESETS

    rgb, thermal = inputs
    calibration = [(torch.from_numpy(rgb[i : i + 1]), torch.from_numpy(thermal[i : i + 1]))
                   for i in range(len(rgb))]  # fmt: skip
    path = tmp_path / "int8.onnx"
    ort_backend.build(module, HW, path, calibration)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert [p.name for p in tmp_path.iterdir()] == ["int8.onnx"]  # no intermediate left
    backend = ort_backend.OnnxRuntimeBackend(path, HW)
    info = EngineInfo("detection", ("a", "b", "c"), HW, THERMAL_PRESETS["agc8"])
    error = verify_against_module(backend, module, info, "int8", "cpu")
    assert 0 < error < 0.25  # quantised (not bit-exact), yet within the int8 tolerance
    backend.close()
    with pytest.raises(ValueError, match="calibration pairs"):
        ort_backend.build(module, HW, tmp_path / "none.onnx", [])


def _int8_consumers(path) -> set[str]:
    """The op types that read a DequantizeLinear output: the ops run in int8."""
    import onnx

    graph = onnx.load(str(path)).graph
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    return {n.op_type for n in graph.node if dequantized & set(n.input)}


def test_openvino_int8_engine_quantises_only_its_ops_and_is_close_to_fp32(module, inputs, tmp_path):
    """OpenVINO's int8 graph: convolutions, matrix products and their activations in
    QDQ, the element-wise ops left in fp32; within the int8 tolerance of the module."""
    from ivtuning_ros.engine.backends import openvino as ov_backend
    from ivtuning_ros.engine.engine import EngineInfo, verify_against_module
    from ivtuning_ros.preprocess import THERMAL_PRESETS

    rgb, thermal = inputs
    calibration = [(torch.from_numpy(rgb[i : i + 1]), torch.from_numpy(thermal[i : i + 1]))
                   for i in range(len(rgb))]  # fmt: skip
    path = tmp_path / "int8.onnx"
    ov_backend.check("int8", "cpu")
    ov_backend.build_artifact(module, HW, path, "int8", "cpu", calibration)
    ort_path = tmp_path / "ort_int8.onnx"
    ort_backend.build(module, HW, ort_path, calibration)
    # the ONNX Runtime recipe quantises the head's Sigmoid, OpenVINO's keeps it in fp32
    assert {"Conv", "Sigmoid"} <= _int8_consumers(ort_path)
    assert "Conv" in _int8_consumers(path) and "Sigmoid" not in _int8_consumers(path)
    backend = ov_backend.load(path, HW, "int8", 1, "cpu")
    info = EngineInfo("detection", ("a", "b", "c"), HW, THERMAL_PRESETS["agc8"])
    error = verify_against_module(backend, module, info, "int8", "cpu")
    assert 0 < error < 0.25
    backend.close()
    assert ov_backend.QUANTIZATION_RECIPE != ort_backend.QUANTIZATION_RECIPE  # cache keys


def test_int8_calibration_runs_in_equal_chunks_of_at_most_eight():
    """ONNX Runtime's strided calibration needs equal chunks; 8 pairs bound the memory."""
    assert [ort_backend._chunk(n) for n in (64, 10, 13, 3, 1)] == [8, 5, 1, 3, 1]


def test_calibration_folder_errors_name_it(tmp_path):
    from ivtuning_ros.engine.calibration import calibration_batches, calibration_pairs
    from ivtuning_ros.preprocess import THERMAL_PRESETS

    with pytest.raises(FileNotFoundError, match=r"calibration folder .*nowhere does not exist"):
        calibration_pairs(tmp_path / "nowhere")
    (tmp_path / "vi").mkdir()
    (tmp_path / "ir").mkdir()
    with pytest.raises(ValueError, match=r"no same-named images in vi/ and ir/"):
        calibration_pairs(tmp_path)
    cv2.imwrite(str(tmp_path / "vi" / "a.png"), np.zeros((16, 16, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "ir" / "a.png"), np.zeros((16, 16), np.uint8))
    with pytest.raises(ValueError, match=r"a\.png is too small \(16x16"):
        list(calibration_batches(tmp_path, HW, THERMAL_PRESETS["agc8"], 4))
    (tmp_path / "ir" / "a.png").write_bytes(b"broken")
    with pytest.raises(ValueError, match="cannot read calibration pair"):
        list(calibration_batches(tmp_path, HW, THERMAL_PRESETS["agc8"], 4))


def test_closed_backend_refuses_to_run(module):
    backend = TorchBackend(module, HW)
    backend.close()
    backend.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        backend.run(np.zeros((1, 3, *HW), np.float32), np.zeros((1, 1, *HW), np.float32))


def test_onnxruntime_denormals_flag_leaves_numpy_quiet(tmp_path):
    """ORT's denormals-as-zero stays on in the thread that ran the session; numpy,
    describing float32 for the first time there, would warn in the node's log. A fresh
    process, so that no earlier test has described float32 already."""
    import subprocess
    import sys

    script = f"""
import numpy as np, onnx, onnxruntime as ort
from onnx import TensorProto, helper
from ivtuning_ros.engine.backends.onnxruntime import session_options
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
path = {str(tmp_path / "relu.onnx")!r}
onnx.save(model, path)
session = ort.InferenceSession(path, session_options(1), providers=["CPUExecutionProvider"])
session.run(None, {{"x": np.ones(4, np.float32)}})
np.finfo(np.float32)  # -W error: a warning here fails
"""
    done = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", script],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def test_torch_work_leaves_no_thread_spinning_after_it():
    """An engine build checks itself against torch eager; torch's OpenMP workers must not
    keep a core busy afterwards, where ONNX Runtime or OpenVINO then runs the node's frames
    (OMP_WAIT_POLICY=ACTIVE alone kept one spinning ~12 minutes). A fresh process without
    this session's settings, so the package's own default is what is tested."""
    import os
    import subprocess
    import sys

    script = """
import time
import ivtuning_ros  # noqa: F401  (sets the OpenMP defaults before torch loads)
import torch
torch.set_num_threads(2)
x = torch.rand(1024, 1024)
for _ in range(5):
    x @ x  # a parallel region: the OpenMP workers now exist
start = time.process_time()
time.sleep(1.0)
print(time.process_time() - start)
"""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    idle_cpu_s = float(done.stdout.split()[-1])
    assert idle_cpu_s < 0.5, f"{idle_cpu_s:.2f} s of CPU in 1 s of idling: a thread spins"
