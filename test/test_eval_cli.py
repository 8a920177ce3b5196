"""`ivtuning eval` through the engine + Predictor path: report, table, overlays, and the
same figures as the trainer's in-process evaluation of the same checkpoint."""

import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from ivtuning_ros.data.dataset import PreparedDataset, open_dataset
from ivtuning_ros.data.synthetic import SEG_CLASSES
from ivtuning_ros.model.checkpoint import load_checkpoint
from ivtuning_ros.tools.cli import main
from ivtuning_ros.train.config import parse_train_config
from ivtuning_ros.train.data import SYNTHETIC_SPLIT, synthetic_folder
from ivtuning_ros.train.trainer import train, validate
from ivtuning_ros.types import CAMERAS


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    test_spec = {"conditions": ["dense_fog"], "count": 6, "seed": 9, "size": [96, 64]}
    cfg = parse_train_config(
        {
            "model": {"preset": "default",
                      "overrides": {"weights": "random", "input_size": [64, 96]}},
            "data": {
                "cache_dir": str(root / "cache"),
                "train": {"synthetic": {"conditions": ["clear_night"], "count": 12, "seed": 1,
                                        "size": [96, 64]}},
                "val": {"fraction": 0.25},
                "test": {"synthetic": test_spec},
            },
            "train": {"epochs": 1, "batch_size": 3, "lr": 0.003, "warmup_steps": 1,
                      "amp": "off", "threads": 1, "val_score_threshold": 0.01},
        }
    )  # fmt: skip
    result = train(cfg, root / "run", progress=False)
    test_dir = synthetic_folder(cfg.data.test.synthetic, root / "cache")
    return root, result, test_dir


def test_eval_report_matches_training_evaluation(trained, capsys):
    root, result, test_dir = trained
    out = root / "report.json"
    code = main(
        ["eval", "--checkpoint", str(result.best_checkpoint), "--data", str(test_dir),
         "--split", SYNTHETIC_SPLIT, "--json", str(out), "--overlays", "2",
         "--score-threshold", "0.01", "--quiet"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert report["task"] == "detection" and report["images"] == 6
    assert report["backend"] == "torch"
    for key in ("map", "map50", "map75", "ap50/person"):
        assert key in report["metrics"]
    # Same checkpoint, same pixels, same postprocess: the node's path and the trainer's
    # in-process test evaluation agree.
    for key in ("map", "map50", "map75"):
        assert report["metrics"][key] == pytest.approx(result.test_metrics[key], abs=1e-6)
    table = capsys.readouterr().out
    assert "map50" in table and "detection on 6 images" in table
    assert len(report["overlays"]) == 2
    picture = cv2.imread(report["overlays"][0])
    assert picture.shape == (64, 192, 3)  # RGB | thermal side by side at source size


@pytest.mark.parametrize("missing", CAMERAS)
def test_eval_with_a_camera_missing_scores_what_training_dropout_shows(trained, missing):
    """The node's neutral fill for a silent camera is the one modality dropout trains with:
    `eval --missing` and the trainer's evaluation with that stream always dropped agree."""
    root, result, test_dir = trained
    out = root / f"without_{missing}.json"
    code = main(
        ["eval", "--checkpoint", str(result.best_checkpoint), "--data", str(test_dir),
         "--split", SYNTHETIC_SPLIT, "--json", str(out), "--overlays", "1",
         "--score-threshold", "0.01", "--missing", missing, "--quiet"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert report["missing"] == missing
    model, info = load_checkpoint(result.best_checkpoint)
    samples = open_dataset(test_dir, "auto", split=SYNTHETIC_SPLIT)
    dropped = PreparedDataset(
        samples, info.config.input_size, info.config.thermal_norm, "detection",
        modality_dropout=1.0, dropout_stream=missing,
    )  # fmt: skip
    expected = validate(model, dropped, 4, 0.01, torch.device("cpu"))
    for key in ("map", "map50", "map75"):
        assert report["metrics"][key] == pytest.approx(expected[key], abs=1e-6)
    assert report["metrics"] != pytest.approx(result.test_metrics)  # the camera mattered
    # the overlay shows what the model saw: the missing camera's panel is blank (but for
    # the boxes drawn on it), the other one is a noisy night image
    picture = cv2.imread(report["overlays"][0])
    blank, seen = (picture[:, :96], picture[:, 96:])[:: 1 if missing == "rgb" else -1]
    assert _commonest_colour_share(blank) > 0.8 and _commonest_colour_share(seen) < 0.5


def _commonest_colour_share(panel: np.ndarray) -> float:
    _, counts = np.unique(panel.reshape(-1, 3), axis=0, return_counts=True)
    return counts.max() / counts.sum()


def test_eval_errors_are_clear(trained, capsys):
    root, result, test_dir = trained
    code = main(["eval", "--checkpoint", str(root / "nope.safetensors"), "--data", str(test_dir),
                 "--split", SYNTHETIC_SPLIT])  # fmt: skip
    assert code == 2 and "nope.safetensors" in capsys.readouterr().err
    code = main(["eval", "--checkpoint", str(result.best_checkpoint), "--data",
                 str(root / "missing")])  # fmt: skip
    assert code == 2 and "missing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("preset", "expected"),
    [("efficientnet_lite0_seg", ("miou", "pixel_accuracy")),
     ("efficientnet_lite0_sod", ("s_measure", "e_measure_mean", "weighted_f", "mae"))],
)  # fmt: skip
def test_eval_segmentation_and_saliency(tmp_path, preset, expected):
    spec = {"conditions": ["light_fog"], "count": 4, "seed": 2, "size": [96, 64]}
    overrides = {"weights": "random", "input_size": [64, 96]}
    if preset.endswith("seg"):
        overrides["class_names"] = list(SEG_CLASSES)
    cfg = parse_train_config(
        {
            "model": {"preset": preset, "overrides": overrides},
            "data": {"cache_dir": str(tmp_path / "cache"), "train": {"synthetic": spec},
                     "val": {"fraction": 0.5}, "test": {"synthetic": spec}},
            "train": {"epochs": 1, "batch_size": 2, "lr": 0.003, "amp": "off", "threads": 1},
        }
    )  # fmt: skip
    result = train(cfg, tmp_path / "run", progress=False)
    out = tmp_path / "report.json"
    data = synthetic_folder(cfg.data.test.synthetic, tmp_path / "cache")
    assert main(["eval", "--checkpoint", str(result.best_checkpoint), "--data", str(data),
                 "--split", SYNTHETIC_SPLIT, "--json", str(out), "--overlays", "1",
                 "--quiet"]) == 0  # fmt: skip
    report = json.loads(out.read_text())
    for key in expected:
        assert report["metrics"][key] == pytest.approx(result.test_metrics[key], abs=1e-6)
    assert len(report["overlays"]) == 1


def test_eval_runs_an_int8_engine_calibrated_on_pairs(trained, tmp_path, capsys):
    """A user checks int8 on their own data: `eval --backend openvino --precision int8
    --calibration DIR` builds the calibrated engine and scores it like fp32."""
    root, result, test_dir = trained
    calib = tmp_path / "calib"
    for camera in ("rgb", "thermal"):
        (calib / camera).mkdir(parents=True)
        for image in sorted((test_dir / camera / SYNTHETIC_SPLIT).iterdir())[:4]:
            shutil.copy(image, calib / camera / image.name)
    args = ["eval", "--checkpoint", str(result.best_checkpoint), "--data", str(test_dir),
            "--split", SYNTHETIC_SPLIT, "--score-threshold", "0.01", "--quiet",
            "--backend", "openvino", "--precision", "int8"]  # fmt: skip
    assert main(args) == 2
    assert "calibration" in capsys.readouterr().err  # int8 without pairs: refused, why said
    out = root / "int8.json"
    assert main([*args, "--calibration", str(calib), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["backend"] == "openvino" and report["images"] == 6
    assert report["metrics"]["map50"] == pytest.approx(result.test_metrics["map50"], abs=0.15)
