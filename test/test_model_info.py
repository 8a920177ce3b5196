"""`ivtuning model-info` and `ivtuning bench model` run and report consistent figures."""

from __future__ import annotations

import json

from ivtuning_ros.paths import config_dir
from ivtuning_ros.tools.cli import main


def test_model_info_reports_counts_flops_and_schedule(tmp_path, capsys):
    out = tmp_path / "info.json"
    assert main(["model-info", "--config", "swin_large_reference", "--json", str(out)]) == 0
    info = json.loads(out.read_text())
    assert info["prompter"] == 6_062_788
    assert info["adapter_ranks"] == [64] * 24 and info["prompt_ranks"] == [8] * 24
    assert info["flops"] > info["flops_rgb_backbone"] > info["flops_head"] > 0
    printed = capsys.readouterr().out
    assert "6,062,788" in printed and "trainable share of the backbone" in printed

    out = tmp_path / "default.json"
    assert main(["model-info", "--config", "default", "--json", str(out)]) == 0
    info = json.loads(out.read_text())
    assert info["trainable"] == info["prompter"] + info["head"]
    assert info["adapter_ranks"] == sorted(info["adapter_ranks"])
    assert 1.0 < info["flops"] / info["flops_rgb_backbone"] < 1.3


def test_model_info_bad_config_is_a_clear_error(tmp_path, capsys):
    assert main(["model-info", "--config", "no_such_preset"]) == 2
    assert "presets" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("backbone: resnet50\nweights: random\ntask: detection\nclass_names: [a]\n")
    assert main(["model-info", "--config", str(bad)]) == 2
    assert "unknown backbone 'resnet50'" in capsys.readouterr().err


def test_bench_model_writes_ratios(tmp_path):
    small = tmp_path / "small.yaml"  # the default preset, small and with random weights
    text = (config_dir() / "models" / "default.yaml").read_text()
    small.write_text(text.replace("[256, 320]", "[64, 96]").replace("package:", "random #"))
    out = tmp_path / "bench.json"
    assert main(["bench", "model", "--presets", str(small), "--backends", "torch",
                 "--runs", "2", "--warmup", "1", "--json", str(out)]) == 0  # fmt: skip
    report = json.loads(out.read_text())
    (preset,) = report["presets"]
    assert set(preset["latency_ms"]["torch"]) >= {"rgb_backbone", "ivtuning", "dual_backbone"}
    assert preset["latency_ms"]["torch"]["ivtuning"]["n"] == 2
    flops = preset["flops"]
    assert flops["rgb_backbone"] < flops["ivtuning"] < flops["dual_backbone"]
    assert set(preset["ratios"]["torch"]) >= {"ivtuning/rgb_backbone", "ivtuning/dual_backbone"}
