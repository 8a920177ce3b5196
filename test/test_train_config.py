"""Train configs: every bad key is named; shipped configs load and resolve."""

import copy
from pathlib import Path

import pytest

from ivtuning_ros.train.config import config_to_dict, load_train_config, parse_train_config

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config" / "train"

GOOD = {
    "model": {"preset": "default", "overrides": {"weights": "random"}},
    "data": {
        "train": {"synthetic": {"conditions": ["clear_night"], "count": 10}},
        "val": {"fraction": 0.2},
    },
    "train": {"epochs": 1, "batch_size": 2, "lr": 1e-3},
}


def test_round_trip_and_defaults():
    cfg = parse_train_config(GOOD)
    assert cfg.train.amp == "auto" and cfg.train.modality_dropout == 0.0
    assert cfg.data.train.synthetic.conditions == ("clear_night",)
    assert parse_train_config(config_to_dict(cfg)) == cfg
    assert cfg.model.resolve().weights == "random"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["train"].update(lr="fast"), r"train\.lr: expected a number"),
        (lambda r: r["train"].update(lr=0), "lr must be > 0"),
        (lambda r: r["train"].update(learning_rate=1), r"unknown key train\.learning_rate"),
        (lambda r: r["train"].pop("epochs"), r"missing key train\.epochs"),
        (lambda r: r["train"].update(amp="fp8"), "amp: 'fp8'"),
        (lambda r: r["train"].update(modality_dropout=1.5), "modality_dropout"),
        (lambda r: r["train"].update(dropout_stream="ir"), "dropout_stream: .ir. is not one of"),
        (lambda r: r["data"].pop("val"), r"missing key data\.val"),
        (lambda r: r["data"].update(augment_max_zoom_out=0.5), "augment_max_zoom_out must be"),
        (lambda r: r["data"]["val"].update(fraction=1.5), r"data\.val: fraction"),
        (lambda r: r["data"]["val"].update(root="x"), r"data\.val: give exactly one"),
        (
            lambda r: r["data"]["train"]["synthetic"].update(conditions=["snow"]),
            "unknown condition 'snow'",
        ),
        (lambda r: r["data"].update(train={"root": "/x"}), "needs a format"),
        (lambda r: r.update(extra=1), "unknown key extra"),
        (lambda r: r["model"].update(overrides=[1]), r"model\.overrides: expected a mapping"),
    ],
)
def test_bad_values_name_their_key(edit, message):
    raw = copy.deepcopy(GOOD)
    edit(raw)
    with pytest.raises(ValueError, match=message):
        parse_train_config(raw)


def test_model_override_errors_name_the_model_key():
    raw = copy.deepcopy(GOOD)
    raw["model"]["overrides"] = {"mode": "half"}
    cfg = parse_train_config(raw)
    with pytest.raises(ValueError, match="'mode'"):
        cfg.model.resolve()
    raw["model"]["overrides"] = {"colour": 1}
    with pytest.raises(ValueError, match="colour"):
        parse_train_config(raw).model.resolve()


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_train_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_train_config(bad)
    bad.write_text("- 1\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_train_config(bad)


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load_and_resolve(path):
    cfg = load_train_config(path)
    model = cfg.model.resolve()
    assert model.task in ("detection", "segmentation", "saliency")
