"""The default model through load_engine: ONNX Runtime and torch backends against torch
eager fp32, the engine cache seen from load_engine (hit, checkpoint change, corrupt
artifact), the Predictor end to end and `ivtuning export`.

Tolerances (fp32, CPU): scores 1e-4 absolute, boxes 1e-3 px absolute (coordinates reach
320 px, where float32 spacing alone is 3e-5), class ids exact. Each ONNX build of the
default model takes about 20 s on 2 idle cores; this module builds three times.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from ivtuning_ros.engine.config import EngineConfig
from ivtuning_ros.engine.engine import load_engine
from ivtuning_ros.engine.predictor import Predictor
from ivtuning_ros.model import build_model, load_model_config
from ivtuning_ros.model.checkpoint import save_checkpoint
from ivtuning_ros.postprocess import decode_detections
from ivtuning_ros.preprocess import THERMAL_PRESETS, ThermalNorm, prepare_pair
from ivtuning_ros.tools.cli import main as cli_main

SCORE_ATOL = 1e-4
BOX_ATOL = 1e-3


def trained_like(seed: int):
    """The default model with its trainable weights moved off their init, so candidate
    scores spread out like a trained model's instead of all sitting at the prior."""
    model = build_model(load_model_config("default")).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)
        for out in (model.head.cls_out, model.head.ctr_out):  # confident, varied scores
            out.weight.copy_(torch.randn(out.weight.shape, generator=gen) * 3.0)
            out.bias.zero_()
    return model


@pytest.fixture(scope="module")
def model():
    return trained_like(0)


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "det.safetensors", model)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(scope="module")
def inputs():
    """Two real photos (and their grey levels as 'thermal'): structured inputs give
    structured, well-separated scores, unlike noise."""
    pairs = []
    for name in ("astronaut", "chelsea"):
        rgb = getattr(skimage.data, name)()
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        r, t, _ = prepare_pair(rgb, grey, (256, 320), THERMAL_PRESETS["agc8"])
        pairs.append((r, t))
    return np.stack([r for r, _ in pairs]), np.stack([t for _, t in pairs])


def eager(model, inputs):
    with torch.no_grad():
        out = model.inference_module()(*(torch.from_numpy(a) for a in inputs))
    return [o.numpy() for o in out]


def assert_detection_parity(got, want):
    """Top-K candidates agree, allowing near-tied scores to swap places."""
    (gb, gs, gc), (wb, ws, wc) = got, want
    assert gb.shape == wb.shape and gs.shape == ws.shape and gc.dtype == wc.dtype
    np.testing.assert_allclose(np.sort(gs, axis=1), np.sort(ws, axis=1), atol=SCORE_ATOL, rtol=0)
    for b in range(gs.shape[0]):
        kth = ws[b].min()
        for i in np.flatnonzero(gs[b] > kth + SCORE_ATOL):  # clear of the top-K boundary
            same = (wc[b] == gc[b, i]) & (np.abs(ws[b] - gs[b, i]) <= SCORE_ATOL)
            assert same.any(), f"candidate {i} of image {b}: no eager candidate of its score"
            dist = np.abs(wb[b][same] - gb[b, i]).max(axis=1)
            assert dist.min() <= BOX_ATOL, f"candidate {i} of image {b}: box off by {dist.min()}"


@pytest.fixture(scope="module")
def ort_engine(checkpoint, cache_dir):
    lines: list[str] = []
    engine = load_engine(
        checkpoint, EngineConfig(backend="onnxruntime", cache_dir=cache_dir, warmup_runs=2),
        log=lines.append,
    )  # fmt: skip
    engine.lines = lines
    yield engine
    engine.close()


def test_first_load_builds_with_progress_and_warms_up(ort_engine):
    text = "\n".join(ort_engine.lines)
    assert ort_engine.built and "no cached engine yet" in ort_engine.reason
    assert "please wait" in text and "built onnxruntime fp32 engine" in text
    assert "output matches torch eager" in text  # verified before it was cached
    assert len(ort_engine.warmup_s) == 2 and "ready" in ort_engine.lines[-1]
    assert ort_engine.artifact.name == "model.onnx" and ort_engine.artifact.is_file()
    assert ort_engine.task == "detection" and ort_engine.input_hw == (256, 320)
    assert ort_engine.class_names == ("person", "car", "bicycle", "dog")
    assert ort_engine.thermal_norm.mode == "fixed" and ort_engine.backend_name == "onnxruntime"


def test_onnxruntime_matches_torch_eager(ort_engine, model, inputs):
    want = eager(model, inputs)
    got = ort_engine.run(*inputs)
    assert_detection_parity(got, want)
    # Scores really do spread out, so the matching above is not vacuous.
    assert np.ptp(want[1]) > 0.02


def test_torch_backend_matches_torch_eager(checkpoint, cache_dir, model, inputs):
    engine = load_engine(
        checkpoint, EngineConfig(backend="torch", cache_dir=cache_dir, warmup_runs=0), log=print
    )
    assert engine.artifact is None  # nothing to cache for eager torch
    # The same module rebuilt from the checkpoint: bit-identical except for thread
    # scheduling of reductions.
    assert_detection_parity(engine.run(*inputs), eager(model, inputs))


def test_second_load_is_a_cache_hit(checkpoint, cache_dir, ort_engine, inputs):
    lines: list[str] = []
    cfg = EngineConfig(backend="onnxruntime", cache_dir=cache_dir, warmup_runs=1)
    with load_engine(checkpoint, cfg, log=lines.append) as again:
        assert not again.built and again.key == ort_engine.key
        assert any("cache hit" in line for line in lines)
        assert not any("building" in line for line in lines)
        np.testing.assert_array_equal(again.run(*inputs)[1], ort_engine.run(*inputs)[1])


def test_auto_picks_onnxruntime_here_and_says_why(checkpoint, cache_dir, ort_engine):
    pytest.importorskip("onnxruntime")
    lines: list[str] = []
    with load_engine(checkpoint, EngineConfig(cache_dir=cache_dir, warmup_runs=0), lines.append):
        pass
    if not torch.cuda.is_available():
        assert "backend onnxruntime" in lines[0] and "no tensorrt" in lines[0]


def test_export_cli_reports_the_cached_artifact(checkpoint, cache_dir, ort_engine, capsys):
    code = cli_main(
        ["export", "--checkpoint", str(checkpoint), "--backend", "onnxruntime",
         "--cache-dir", str(cache_dir)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert f"engine already cached: {ort_engine.artifact}" in out
    assert "task detection" in out
    code = cli_main(["export", "--checkpoint", str(checkpoint.with_name("nope.safetensors"))])
    assert code == 2 and "nope.safetensors" in capsys.readouterr().err


def test_predictor_end_to_end_and_runtime_thresholds(ort_engine, model):
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    thermal = rng.uniform(0, 255, (480, 640)).astype(np.float32)
    predictor = Predictor(ort_engine, score_threshold=0.0, iou_threshold=0.5, max_detections=50)
    pred = predictor.predict(rgb, thermal)
    det = pred.detections
    assert pred.mask is None and pred.saliency is None
    assert 0 < len(det) <= 50
    assert (det.boxes[:, 0::2] >= 0).all() and (det.boxes[:, 0::2] <= 640).all()
    assert (det.boxes[:, 1::2] >= 0).all() and (det.boxes[:, 1::2] <= 480).all()
    assert set(pred.timings_ms) == {"preprocess", "inference", "postprocess", "total"}
    # The same pair through torch eager + the same postprocess gives the same detections.
    r, t, box = prepare_pair(rgb, thermal, (256, 320), ort_engine.thermal_norm)
    ref = decode_detections(*[o[0] for o in eager(model, (r[None], t[None]))], box, 0.0, 0.5, 50)
    np.testing.assert_allclose(np.sort(det.scores), np.sort(ref.scores), atol=SCORE_ATOL)
    # Thresholds change at run time without touching the engine.
    cut = float(np.median(det.scores))
    predictor.set_thresholds(score_threshold=cut)
    assert (predictor.predict(rgb, thermal).detections.scores >= cut).all()
    predictor.set_thresholds(max_detections=3)
    assert len(predictor.predict(rgb, thermal).detections) <= 3
    with pytest.raises(ValueError, match="score_threshold"):
        predictor.set_thresholds(score_threshold=1.5)
    # A caller that normalised thermal itself overrides the checkpoint's norm.
    own = Predictor(ort_engine, 0.0, 0.5, 50, thermal_norm=ThermalNorm("fixed", 0.0, 1.0))
    same = own.predict(rgb, thermal / 255.0).detections
    np.testing.assert_allclose(np.sort(same.scores), np.sort(det.scores), atol=SCORE_ATOL)
    # A missing camera is neutral-filled, not an error.
    assert predictor.predict(None, thermal).detections is not None
    assert predictor.predict(rgb, None).letterbox.src_h == 480


def test_changed_checkpoint_rebuilds_and_says_why(checkpoint, cache_dir, ort_engine, inputs):
    """Runs last: it overwrites the module's checkpoint (same path, retrained weights)."""
    retrained = trained_like(2)
    save_checkpoint(checkpoint, retrained)
    lines: list[str] = []
    cfg = EngineConfig(backend="onnxruntime", cache_dir=cache_dir, warmup_runs=0)
    with load_engine(checkpoint, cfg, log=lines.append) as engine:
        assert engine.built and "checkpoint_sha256" in engine.reason
        assert "backbone_hash" not in engine.reason  # the frozen part did not change
        assert engine.artifact == ort_engine.artifact  # same slot, replaced in place
        assert any("key changed" in line for line in lines)
        assert_detection_parity(engine.run(*inputs), eager(retrained, inputs))
    # Damage the new artifact: detected before loading, deleted, rebuilt, reported.
    artifact = engine.artifact
    artifact.write_bytes(artifact.read_bytes()[:1000])
    lines.clear()
    with load_engine(checkpoint, cfg, log=lines.append) as engine:
        assert engine.built and "corrupt artifact" in engine.reason
        assert any("truncated" in line for line in lines)
        assert_detection_parity(engine.run(*inputs), eager(retrained, inputs))
