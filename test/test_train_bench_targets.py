"""bench tuning: the target checks and the table, on made-up figures."""

import pytest

from ivtuning_ros.bench.tuning import (
    AVERAGED,
    LEARNING_RATES,
    combine_seeds,
    format_table,
    learning_rates,
    targets,
)


def row(mode, seen, unseen, mem, step, trainable=1000):
    return {
        "mode": mode, "map50_seen": seen, "map50_unseen": unseen, "val_map50": seen,
        "peak_training_increase_mib": mem, "peak_rss_mib": mem + 700, "step_ms_median": step,
        "parameters": {"trainable": trainable}, "lr": 0.004,
    }  # fmt: skip


def test_targets_compare_ivtuning_with_full_and_single_modalities():
    rows = {
        "ivtuning": row("ivtuning", 0.8, 0.6, 500, 700),
        "full": row("full", 0.85, 0.5, 1000, 1000),
        "rgb_only": row("rgb_only", 0.7, 0.2, 300, 400),
        "thermal_only": row("thermal_only", 0.82, 0.55, 300, 400),
    }
    t = targets(rows)
    assert t["unseen mAP50 ivtuning >= full"]["met"]
    assert t["peak training memory ivtuning <= 0.6x full"] == {"value": 0.5, "met": True}
    assert t["time per step ivtuning <= 0.8x full"] == {"value": 0.7, "met": True}
    assert t["seen mAP50 ivtuning > rgb_only"]["met"]
    assert not t["seen mAP50 ivtuning > thermal_only"]["met"]  # 0.80 < 0.82
    rows["ivtuning_recompute"] = row("ivtuning_recompute", 0.8, 0.6, 350, 950)
    t = targets(rows)
    assert t["peak training memory ivtuning_recompute <= 0.6x full"]["met"]
    assert not [k for k in t if k.startswith("time") and "recompute" in k]  # trades time
    table = format_table({"modes": list(rows.values()), "targets": t, "seeds": [0]})
    assert "[MISSED] seen mAP50 ivtuning > thermal_only" in table
    assert table.splitlines()[2].startswith("ivtuning")


def test_each_mode_trains_at_its_own_learning_rate_unless_told_otherwise():
    modes = ["ivtuning", "full", "ivtuning_recompute", "full_frozen_bn"]
    rates = learning_rates(None, modes)
    assert rates["ivtuning"] == rates["ivtuning_recompute"] == LEARNING_RATES["ivtuning"]
    assert rates["full"] == rates["full_frozen_bn"] == LEARNING_RATES["full"]
    assert learning_rates("0.002", modes) == dict.fromkeys(modes, 0.002)
    rates = learning_rates("full=0.01, ivtuning_recompute=0.003", modes)
    assert rates == {**learning_rates(None, modes), "full": 0.01, "ivtuning_recompute": 0.003}
    with pytest.raises(ValueError, match="'rgb_only', which is not in --modes"):
        learning_rates("rgb_only=0.01", modes)
    with pytest.raises(ValueError, match="must be > 0, got -1"):
        learning_rates("full=-1", modes)
    with pytest.raises(ValueError, match="'fast' is not a number"):
        learning_rates("fast", modes)


def test_targets_skip_comparisons_without_their_modes():
    assert targets({"ivtuning": row("ivtuning", 0.5, 0.5, 1, 1)}) == {}


def run(mode, seed, seen, unseen, mem, step):
    figures = dict.fromkeys(AVERAGED, 0.0)
    return {**figures, **row(mode, seen, unseen, mem, step), "seed": seed, "best_epoch": 3,
            "scores": {}}  # fmt: skip


def test_seeds_are_averaged_and_the_targets_compare_the_means():
    iv = combine_seeds([run("ivtuning", 0, 0.5, 0.40, 500, 700),
                        run("ivtuning", 1, 0.6, 0.50, 520, 720)])  # fmt: skip
    full = combine_seeds([run("full", 0, 0.7, 0.60, 1000, 1000),
                          run("full", 1, 0.3, 0.20, 1000, 1000)])  # fmt: skip
    assert iv["map50_unseen"] == pytest.approx(0.45) and iv["map50_unseen_min"] == 0.40
    assert iv["peak_training_increase_mib"] == 510 and iv["seeds"] == [0, 1]
    assert [r["seed"] for r in iv["runs"]] == [0, 1] and "best_epoch" not in iv
    assert "seed" not in iv  # a mode's row stands for all its seeds
    t = targets({"ivtuning": iv, "full": full})
    # full wins seed 0 (0.60 vs 0.40) but its mean (0.40) is below ivtuning's (0.45)
    assert t["unseen mAP50 ivtuning >= full"] == {"value": "0.450 vs 0.400", "met": True}
    table = format_table({"modes": [iv, full], "targets": t, "seeds": [0, 1]})
    assert "  full                 s0 0.700/0.600  s1 0.300/0.200" in table


def test_bench_tuning_runs_end_to_end(tmp_path):
    """Two modes on a few pairs for one epoch: every stage of the real benchmark runs
    (rendering with the bench's lens, training subprocesses, both test sets, JSON, plot);
    the figures themselves are for `docs/benchmarks.md`, not for a test."""
    import json

    from ivtuning_ros.tools.cli import main

    out, plot = tmp_path / "tuning.json", tmp_path / "tuning.png"
    code = main(
        ["bench", "tuning", "--modes", "ivtuning,thermal_only", "--train-count", "4",
         "--val-count", "2", "--test-count", "2", "--epochs", "1", "--batch-size", "2",
         "--seeds", "0,1", "--lr", "thermal_only=0.002",
         "--cache-dir", str(tmp_path / "cache"), "--json", str(out), "--plot", str(plot)]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert [m["mode"] for m in report["modes"]] == ["ivtuning", "thermal_only"]
    assert report["config"]["data"]["train"]["synthetic"]["zoom"] == 1.6
    iv, th = report["modes"]
    assert iv["parameters"]["trainable"] > th["parameters"]["trainable"] > 0
    assert (iv["lr"], th["lr"]) == (LEARNING_RATES["ivtuning"], 0.002)
    assert report["learning_rates"] == {"ivtuning": iv["lr"], "thermal_only": 0.002}
    assert not iv["grad_checkpointing"] and iv["steps"] == 2
    assert iv["primary_modality"] == "thermal"  # the default preset
    assert report["seeds"] == [0, 1] and [r["seed"] for r in th["runs"]] == [0, 1]
    assert "seen mAP50 ivtuning > thermal_only" in report["targets"]
    assert plot.stat().st_size > 0
