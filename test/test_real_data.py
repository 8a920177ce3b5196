"""Real MSRS pairs (never copied into the repository): loading, the block split, one
training step and evaluation by class name on a handful of pairs.

The data comes from `--real-data`-like sources: IVTUNING_REAL_DATA, else
../shared/data/msrs when it exists; every test here skips, saying why, without it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ivtuning_ros.data.dataset import detect_format, open_dataset
from ivtuning_ros.data.real import missing_reason, real_data_root
from ivtuning_ros.data.splits import BlockSplit, block_part
from ivtuning_ros.train.config import parse_train_config
from ivtuning_ros.train.trainer import train

pytestmark = pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))


@pytest.fixture(scope="module")
def msrs():
    return open_dataset(real_data_root(), split="train+test")


def test_published_layout_loads(msrs):
    assert detect_format(real_data_root()) == "msrs"
    assert len(msrs) == 348 and msrs.class_names == ("person", "bicycle", "car")
    s = msrs[0]
    assert s.rgb.shape == (480, 640, 3) and s.thermal.shape == (480, 640)
    assert s.thermal.dtype == np.float32 and s.thermal.max() <= 255
    # 3-channel R=G=B infrared files of the train split read as grey like the others
    assert sum(len(msrs.records[i].boxes) for i in range(len(msrs))) > 1500


def test_block_split_parts_are_disjoint_and_cover_day_and_night(msrs):
    parts = {p: block_part(msrs, BlockSplit(), p) for p in ("train", "val", "test")}
    names = {p: {r.name for r in d.records} for p, d in parts.items()}
    assert not (names["train"] & names["val"] or names["train"] & names["test"])
    assert not names["val"] & names["test"]
    for part in parts.values():
        assert {msrs.group_of(r.name) for r in part.records} == {"day", "night"}
    assert len(parts["test"]) >= 60 and len(parts["val"]) >= 40


def test_one_training_step_on_real_pairs(tmp_path):
    root = str(real_data_root())
    source = {"format": "msrs", "root": root, "split": "train+test", "limit": 4}
    cfg = parse_train_config({
        "model": {"preset": "default", "overrides": {
            "input_size": [96, 128], "class_names": ["person", "car", "bicycle"]}},
        "data": {"train": {**source, "blocks": "train"}, "val": {**source, "blocks": "val"}},
        "train": {"epochs": 1, "batch_size": 4, "lr": 0.003, "warmup_steps": 1, "amp": "off",
                  "threads": 1},
    })  # fmt: skip
    result = train(cfg, tmp_path / "run", progress=False)
    log = json.loads((tmp_path / "run" / "train_log.jsonl").read_text().splitlines()[0])
    assert np.isfinite(log["train"]["loss"]) and result.best_epoch == 1
    assert (tmp_path / "run" / "best.safetensors").is_file()


def test_eval_matches_classes_by_name(tmp_path):
    """MSRS numbers (person, bicycle, car), the shipped model otherwise: the CLI maps
    them by name and reports per-class and day / night figures."""
    from ivtuning_ros.paths import models_dir
    from ivtuning_ros.tools.cli import main

    out = tmp_path / "eval.json"
    rc = main([
        "eval", "--checkpoint", str(models_dir() / "default.safetensors"),
        "--data", str(real_data_root()), "--split", "test", "--limit", "6",
        "--json", str(out), "--quiet",
    ])  # fmt: skip
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["images"] == 6 and np.isfinite(report["metrics"]["map50"])
    assert set(report["by_group"]) <= {"day", "night"} and report["by_group"]
    assert "car" not in report["classes"]["unscored_ground_truth"]


def test_bench_tuning_real_config_trains_and_tests_on_block_parts(tmp_path):
    """`bench tuning --data real`: every mode's config parses; its test splits are the
    test blocks and their night pairs."""
    from ivtuning_ros.bench.tuning.recipe import bench_config, learning_rates, run_specs
    from ivtuning_ros.tools.cli import build_parser
    from ivtuning_ros.train.config import parse_source
    from ivtuning_ros.train.data import open_source

    args = build_parser().parse_args(["bench", "tuning", "--data", "real"])
    args.modality_dropout, modes = 0.1, ["ivtuning", "full", "rgb_only", "thermal_only"]
    config = bench_config(args, tmp_path)
    specs = run_specs(config, modes, [0], learning_rates(None, modes), args)
    assert len(specs) == 4 and config["train"]["epochs"] == 24
    test = open_source(parse_source(config["tests"]["seen"]), tmp_path, skip_bad=False)
    night = open_source(parse_source(config["tests"]["unseen"]), tmp_path, skip_bad=False)
    assert {r.name for r in night.records} < {r.name for r in test.records}
    assert {n.group_of(r.name) for n in (night,) for r in n.records} == {"night"}


def test_calibrate_recovers_a_warp_of_real_pairs(tmp_path):
    """`bench registration` on one random rig: the calibration recovers the known warp of
    real pairs within a few pixels (docs/benchmarks.md has 20 rigs of 20 pairs), and the
    data set's registration check is reported."""
    from ivtuning_ros.tools.cli import main

    out = tmp_path / "registration.json"
    code = main(["bench", "registration", "--trials", "1", "--frames", "16", "--map-trials", "0",
                 "--json", str(out)])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    (trial,) = report["trials"]
    assert "failed" not in trial, trial.get("failed")
    assert trial["misalignment_px"] > 10 and trial["error_recovering_warp_px"] < 5
    assert trial["error_vs_data_px"] < 10
    check = report["registration_check"]
    assert check["pairs"] > 50 and 0 < check["edge_distance_calibrated_px"] < 8
