"""bench tuning: the target checks and the table, on made-up figures."""

from ivtuning_ros.bench.tuning import format_table, targets


def row(mode, seen, unseen, mem, step, trainable=1000):
    return {
        "mode": mode, "map50_seen": seen, "map50_unseen": unseen, "val_map50": seen,
        "peak_training_increase_mib": mem, "peak_rss_mib": mem + 700, "step_ms_median": step,
        "parameters": {"trainable": trainable},
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
    table = format_table({"modes": list(rows.values()), "targets": t})
    assert "[MISSED] seen mAP50 ivtuning > thermal_only" in table
    assert table.splitlines()[2].startswith("ivtuning")


def test_targets_skip_comparisons_without_their_modes():
    assert targets({"ivtuning": row("ivtuning", 0.5, 0.5, 1, 1)}) == {}


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
         "--cache-dir", str(tmp_path / "cache"), "--json", str(out), "--plot", str(plot)]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert [m["mode"] for m in report["modes"]] == ["ivtuning", "thermal_only"]
    assert report["config"]["data"]["train"]["synthetic"]["zoom"] == 1.6
    iv, th = report["modes"]
    assert iv["parameters"]["trainable"] > th["parameters"]["trainable"] > 0
    assert not iv["grad_checkpointing"] and iv["steps"] == 2
    assert iv["primary_modality"] == "thermal"  # the default preset
    assert "seen mAP50 ivtuning > thermal_only" in report["targets"]
    assert plot.stat().st_size > 0
