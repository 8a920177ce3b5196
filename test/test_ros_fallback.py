"""The fallback model (`fallback_checkpoint`): a second checkpoint that runs the lone frames
of a camera the main model cannot run on alone, e.g. an rgb_only model beside the
thermal-primary default, so that results go on when the thermal camera fails. Real
engines on untrained checkpoints; the node over real DDS; a bag replayed offline."""

import json
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from ivtuning_ros.msg import DetectionArray
from ivtuning_ros.paths import models_dir
from ivtuning_ros.ros.params import default_values, node_config
from ivtuning_ros.ros.pipeline import load_node_models
from ivtuning_ros.ros.sync import SyncedPair

W, H = 320, 256


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """The default preset (thermal-primary) and single-camera twins of it."""
    import torch

    from ivtuning_ros.model import build_model, load_model_config
    from ivtuning_ros.model.checkpoint import save_checkpoint

    base = load_model_config("default")
    variants = {
        "main": base,
        "rgb": base.replace(mode="rgb_only"),
        "thermal": base.replace(mode="thermal_only"),
        "two_classes": base.replace(mode="rgb_only", class_names=["person", "car"]),
    }
    folder = tmp_path_factory.mktemp("fallback")
    paths = {}
    for name, cfg in variants.items():
        torch.manual_seed(0)
        paths[name] = folder / f"{name}.safetensors"
        save_checkpoint(paths[name], build_model(cfg), {"note": "untrained"})
    return paths


def _cfg(checkpoints: dict[str, Path], fallback: str = "", **values):
    return node_config(
        {
            **default_values(),
            "backend": "torch",
            "warmup_runs": 0,
            "checkpoint": str(checkpoints["main"]),
            "fallback_checkpoint": str(checkpoints[fallback]) if fallback else "",
            **values,
        }
    )


def test_a_lone_rgb_frame_goes_to_the_fallback_and_everything_else_to_the_main_model(
    checkpoints,
):
    models = load_node_models(_cfg(checkpoints, "rgb"))
    try:
        assert models.engine.info.standalone_cameras == ("thermal",)
        assert models.standalone_cameras == ("rgb", "thermal")
        frame = object()
        assert models.for_pair(SyncedPair(frame, None)) == (
            models.fallback,
            models.fallback_predictor,
        )
        for pair in (SyncedPair(frame, frame), SyncedPair(None, frame)):
            assert models.for_pair(pair) == (models.engine, models.predictor)
    finally:
        models.close()
    alone = load_node_models(_cfg(checkpoints))
    try:
        assert alone.fallback is None and alone.standalone_cameras == ("thermal",)
        assert alone.for_pair(SyncedPair(frame, None))[0] is alone.engine
    finally:
        alone.close()


@pytest.mark.parametrize(
    ("fallback", "message"),
    [
        ("two_classes", r"classes \['person', 'car'\] differ from \['person', 'car', 'bicycle'"),
        ("thermal", "it runs alone on thermal frames only, as the main model does"),
    ],
)
def test_a_fallback_that_cannot_stand_in_is_refused_by_name(checkpoints, fallback, message):
    with pytest.raises(
        ValueError, match=f"fallback_checkpoint .*{fallback}.safetensors: {message}"
    ):
        load_node_models(_cfg(checkpoints, fallback))


def test_node_keeps_publishing_from_the_fallback_when_the_thermal_camera_stops(checkpoints):
    """Over DDS: with the thermal camera silent, lone RGB frames run on the rgb_only
    fallback (flagged RGB-only, counted), and the node reports a degraded run (WARN), not
    stopped results (ERROR); a fused pair still goes to the main model."""
    from ivtuning_ros.data.synthetic import render_sample
    from ivtuning_ros.ros.probe import probed_node

    s = render_sample("dense_fog", seed=3, size=(W, H), thermal_bits=16)
    rgb, thermal = s.rgb, s.thermal.astype(np.uint16)
    overrides = {
        "checkpoint": str(checkpoints["main"]),
        "fallback_checkpoint": str(checkpoints["rgb"]),
        "backend": "torch",
        "warmup_runs": 0,
        "qos_depth": 5,
        "sync_timeout": 0.3,
        "stale_after": 1.0,
        "diagnostics_period": 0.2,
    }
    with probed_node(overrides, f"fallback_{uuid.uuid4().hex[:6]}") as (node, probe):
        assert probe.wait_for_node(60.0), "node subscriptions never matched the probe"
        assert probe.fused_result(rgb, thermal) is not None, "no fused result within 30 s"
        assert node.stats.counts["fallback_results"] == 0
        time.sleep(0.4)  # past sync_timeout: the thermal camera is silent from here on
        results = []
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline and not (
            results and "no thermal input" in probe.diagnostics().get("message", "")
        ):
            msg = probe.result_for(probe.publish_pair(rgb, None), timeout=1.5)
            if msg is not None:
                results.append(msg)
        assert results and {m.modalities for m in results} == {DetectionArray.MODALITY_RGB_ONLY}
        n = len(results)
        assert probe.wait_diagnostic("count fallback_results", lambda v: int(v) >= n)
        diag = probe.diagnostics()
        assert diag["level"] == 1, diag["message"]  # WARN: results go on from the fallback
        assert "no results" not in diag["message"]


def test_offline_replay_runs_the_thermal_gap_on_the_fallback(checkpoints, tmp_path):
    """A bag whose thermal camera stops: without a fallback its RGB frames are dropped
    (counted); with one they become RGB-only results, each counted as the fallback's."""
    from ivtuning_ros.replay.options import ReplayOptions
    from ivtuning_ros.replay.session import run_replay
    from ivtuning_ros.replay.synthetic_bag import make_bag

    bag = make_bag(tmp_path / "bag", seconds=1.5, seed=5, progress=False, thermal_gap=(0.3, 2.0))
    reports = {}
    for fallback in ("", "rgb"):
        params = {
            "checkpoint": str(checkpoints["main"]),
            "fallback_checkpoint": str(checkpoints[fallback]) if fallback else "",
            "backend": "torch",
        }
        opts = ReplayOptions(
            bag=bag.path, out=tmp_path / f"out{fallback}", overrides=params, offline=True,
            progress=False, overlays=0,
        )  # fmt: skip
        reports[fallback] = run_replay(opts)
    without, with_fallback = reports[""], reports["rgb"]
    assert without["counts"]["degraded"] == 0 and without["node_counters"]["rgb_timeout"] >= 1
    degraded = with_fallback["counts"]["degraded"]
    assert degraded >= without["node_counters"]["rgb_timeout"]
    assert with_fallback["node_counters"]["fallback_results"] == degraded
    assert "rgb_timeout" not in with_fallback["node_counters"]
    assert with_fallback["counts"]["matched"] == without["counts"]["matched"]
    # the report names both models and pins the fallback by hash, as it does the checkpoint
    from ivtuning_ros.replay.report import file_hash, render_table

    assert "fallback_checkpoint" not in without["model"]
    assert with_fallback["model"]["fallback_checkpoint"] == str(checkpoints["rgb"])
    assert with_fallback["model"]["fallback_sha256"] == file_hash(checkpoints["rgb"])
    assert f"lone frames: {checkpoints['rgb']}" in render_table(with_fallback)
    assert "lone frames" not in render_table(without)


@pytest.mark.parametrize(
    ("main", "fallback"),
    [("synthetic", "rgb_fallback"), ("default", "default_rgb_fallback")],
)
def test_a_shipped_fallback_stands_in_for_its_partner(main, fallback):
    """Each shipped RGB fallback beside its thermal-primary partner (same classes and
    data), as models/README.md tells users to set it, with the operating point its .json
    records."""
    shipped = models_dir() / f"{fallback}.safetensors"
    if not shipped.is_file():
        pytest.skip(f"no {shipped}")
    values = {**default_values(), "backend": "torch", "warmup_runs": 0}
    models = load_node_models(
        node_config(
            {
                **values,
                "checkpoint": f"models/{main}.safetensors",
                "fallback_checkpoint": f"models/{fallback}.safetensors",
            }
        )
    )
    try:
        assert models.engine.info.standalone_cameras == ("thermal",)
        assert models.standalone_cameras == ("rgb", "thermal")
        meta = json.loads(shipped.with_suffix(".json").read_text())
        threshold = models.fallback.info.score_threshold
        assert threshold == pytest.approx(meta["score_threshold"]["value"], abs=1e-4)
        assert models.fallback_predictor.score_threshold == pytest.approx(threshold)
    finally:
        models.close()
