"""bench tuning: the target checks and the table, on made-up figures."""

import pytest

from ivtuning_ros.bench.tuning.recipe import (
    LEARNING_RATES,
    PRESET_LEARNING_RATES,
    bench_config,
    learning_rates,
)
from ivtuning_ros.bench.tuning.results import (
    AVERAGED,
    DEGRADED,
    combine_seeds,
    format_table,
    merge_reports,
    paired_by_seed,
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
    # a preset swept apart keeps its own rates; its unswept modes fall back to the default's
    swept = PRESET_LEARNING_RATES["efficientnet_lite2_det"]
    lite2 = learning_rates(None, [*modes, "thermal_only"], "efficientnet_lite2_det")
    assert lite2["ivtuning"] == lite2["ivtuning_recompute"] == swept["ivtuning"]
    assert lite2["full"] == lite2["full_frozen_bn"] == swept["full"]
    assert lite2["thermal_only"] == LEARNING_RATES["thermal_only"] != swept["ivtuning"]
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
    unseen = t["unseen mAP50 ivtuning >= full"]
    assert (unseen["value"], unseen["met"]) == ("0.450 vs 0.400", True)
    # seed by seed: -0.20 and +0.30, mean +0.05, standard error sd / sqrt(2) = 0.25
    paired = unseen["paired"]
    assert paired["differences"] == pytest.approx({"0": -0.2, "1": 0.3})
    assert paired["mean"] == pytest.approx(0.05)
    assert paired["standard_error"] == pytest.approx(0.25)
    assert (paired["ahead"], paired["seeds"]) == (1, 2)
    table = format_table({"modes": [iv, full], "targets": t, "seeds": [0, 1]})
    assert "  full                 s0 0.700/0.600  s1 0.300/0.200" in table
    assert (
        "[met] unseen mAP50 ivtuning >= full: 0.450 vs 0.400 (paired by seed: +0.050, "
        "standard error 0.250; ivtuning ahead on 1 of 2)" in table
    )


def test_camera_failure_figures_are_averaged_only_where_every_seed_has_them():
    def failing(seed, rgb_missing, thermal_missing):
        figures = {f"map50_{split}_rgb_missing": rgb_missing for split in ("seen", "unseen")}
        figures.update(
            {f"map50_{split}_thermal_missing": thermal_missing for split in ("seen", "unseen")}
        )
        return {**run("ivtuning", seed, 0.5, 0.4, 500, 700), **figures}

    iv = combine_seeds([failing(0, 0.40, 0.10), failing(1, 0.50, 0.20)])
    assert iv["map50_seen_rgb_missing"] == pytest.approx(0.45)
    assert iv["map50_unseen_thermal_missing"] == pytest.approx(0.15)
    table = format_table({"modes": [iv], "targets": {}, "seeds": [0, 1]})
    assert "  ivtuning             rgb missing 0.450/0.450   thermal missing 0.150/0.150" in table
    # a run from before the figures existed: no mean over a subset of the seeds
    older = combine_seeds([failing(0, 0.40, 0.10), run("ivtuning", 1, 0.5, 0.4, 500, 700)])
    assert not any(key in older for key in DEGRADED)
    assert "camera missing" not in format_table({"modes": [older], "targets": {}, "seeds": [0]})


def test_paired_differences_need_two_shared_seeds():
    one = {m: combine_seeds([run(m, 0, 0.5, 0.4, 500, 700)]) for m in ("ivtuning", "full")}
    assert "paired" not in targets(one)["unseen mAP50 ivtuning >= full"]
    iv = combine_seeds([run("ivtuning", s, 0.5, 0.4, 500, 700) for s in (0, 1, 2)])
    thermal = combine_seeds([run("thermal_only", s, 0.45, 0.5, 300, 400) for s in (1, 2)])
    paired = paired_by_seed(iv, thermal, "map50_seen")
    assert paired["differences"] == pytest.approx({"1": 0.05, "2": 0.05})  # seed 0 unpaired
    assert paired["standard_error"] == pytest.approx(0.0) and paired["ahead"] == 2
    t = targets({"ivtuning": iv, "thermal_only": thermal})
    behind = t["unseen mAP50 ivtuning > thermal_only"]
    assert not behind["met"] and behind["paired"]["ahead"] == 0


def report(seeds, modes=("full", "ivtuning"), lr=0.004, epochs=40, modality_dropout=0.0,
           dropout_stream="either"):  # fmt: skip
    rows = [combine_seeds([run(m, s, 0.5, 0.4, 500, 700) for s in seeds]) for m in modes]
    return {
        "benchmark": "tuning", "preset": "default", "seen_conditions": ["a"],
        "unseen_conditions": ["b"], "seeds": list(seeds), "wall_s": 1.0, "machine": {},
        "modality_dropout": modality_dropout, "dropout_stream": dropout_stream,
        "config": {"data": {"cache_dir": f"/tmp/{seeds}"}, "train": {"epochs": epochs}},
        "modes": [{**r, "lr": lr} for r in rows],
    }  # fmt: skip


def test_merge_joins_seeds_and_refuses_runs_that_differ_otherwise():
    merged = merge_reports([("a", report([0, 1])), ("b", report([2]))])
    assert merged["seeds"] == [0, 1, 2] and merged["wall_s"] == 2.0
    assert [m["mode"] for m in merged["modes"]] == ["ivtuning", "full"]  # the bench's order
    assert merged["learning_rates"] == {"ivtuning": 0.004, "full": 0.004}
    assert "unseen mAP50 ivtuning >= full" in merged["targets"]
    assert [f["file"] for f in merged["merged_from"]] == ["a", "b"]
    with pytest.raises(ValueError, match=r"b and a differ in config.train.epochs"):
        merge_reports([("a", report([0])), ("b", report([1], epochs=20))])
    with pytest.raises(ValueError, match=r"b: full trained at lr 0.008, elsewhere at 0.004"):
        merge_reports([("a", report([0])), ("b", report([1], lr=0.008))])
    with pytest.raises(ValueError, match=r"full seed 1 is in both a and b"):
        merge_reports([("a", report([0, 1])), ("b", report([1, 2]))])
    with pytest.raises(ValueError, match=r"different seeds.*'full': \[0\]"):
        merge_reports([("a", report([0])), ("b", report([1], modes=("ivtuning",)))])


def test_merge_checks_modality_dropout_only_where_a_fusion_mode_trained():
    """Single-camera modes never blank a stream: their runs join fusion runs trained at
    any dropout, and the joined report carries the fusion modes' dropout."""
    fusion = report([0, 1], modes=("ivtuning",), modality_dropout=0.1)
    single = report([0, 1], modes=("thermal_only",))
    merged = merge_reports([("single", single), ("fusion", fusion)])
    assert merged["modality_dropout"] == 0.1
    assert [m["mode"] for m in merged["modes"]] == ["ivtuning", "thermal_only"]
    assert "unseen mAP50 ivtuning > thermal_only" in merged["targets"]
    assert merge_reports([("single", single)])["modality_dropout"] == 0.0
    other = report([0, 1], modes=("full",))
    with pytest.raises(ValueError, match=r"fusion trained the fusion modes at modality dropout "
                       r"0.1, other at 0"):  # fmt: skip
        merge_reports([("fusion", fusion), ("other", other)])
    rgb = report([0, 1], modes=("ivtuning",), modality_dropout=0.1, dropout_stream="rgb")
    with pytest.raises(ValueError, match=r"fusion trained the fusion modes at modality dropout "
                       r"0.1, rgb at 0.1 of the rgb stream"):  # fmt: skip
        merge_reports([("fusion", fusion), ("rgb", rgb)])
    merged = merge_reports([("single", single), ("rgb", rgb)])
    assert (merged["modality_dropout"], merged["dropout_stream"]) == (0.1, "rgb")
    # without dropout the stream is moot: old reports (no "dropout_stream") join new ones
    off = report([2], modes=("ivtuning",), dropout_stream="rgb")
    old = report([0, 1], modes=("ivtuning",))
    del old["dropout_stream"]
    assert merge_reports([("old", old), ("off", off)])["dropout_stream"] == "either"


def test_thermal_optics_reach_every_split_and_are_checked(tmp_path, capsys):
    """Every split is rendered with the thermal camera asked for (by default a varied one,
    the shipped model's; `fixed` for the older tables); a bad choice is refused before
    anything renders."""
    from ivtuning_ros.tools.cli import build_parser
    from ivtuning_ros.train.config import parse_source

    parser = build_parser()
    default = parser.parse_args(["bench", "tuning"])
    fixed = parser.parse_args(["bench", "tuning", "--thermal-optics", "fixed"])
    for args, optics in ((default, "varied"), (fixed, "fixed")):
        cfg = bench_config(args, tmp_path)
        for src in (cfg["data"]["train"], cfg["data"]["val"], *cfg["tests"].values()):
            assert parse_source(src).synthetic.thermal_optics == optics
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "tuning", "--thermal-optics", "2:0.5"])
    assert "--thermal-optics: detector_scale must be in (0, 1], got 2.0" in capsys.readouterr().err


def test_fusion_modes_train_with_the_shipped_dropout_unless_told_otherwise():
    """Default 0.1 where a two-camera mode trains, none for single-camera runs (their
    reports then join fusion runs with --merge); an explicit 0 turns it off."""
    from ivtuning_ros.bench.tuning.recipe import MODALITY_DROPOUT, modality_dropout

    assert MODALITY_DROPOUT == 0.1
    assert modality_dropout(None, ["ivtuning", "thermal_only"]) == MODALITY_DROPOUT
    assert modality_dropout(None, ["full_frozen_bn"]) == MODALITY_DROPOUT
    assert modality_dropout(None, ["rgb_only", "thermal_only"]) == 0.0
    assert modality_dropout(0.0, ["ivtuning", "full"]) == 0.0
    assert modality_dropout(0.3, ["full"]) == 0.3
    with pytest.raises(ValueError, match="applies to the two-camera modes"):
        modality_dropout(0.1, ["thermal_only"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--modality-dropout", "1"], r"modality_dropout must lie in \[0, 1\), got 1.0"),
        (["--batch-size", "0"], "batch_size must be >= 1, got 0"),
        (["--modes", "rgb_only", "--modality-dropout", "2"], "applies to the two-camera modes"),
        (["--modes", "rgb_only", "--dropout-stream", "rgb"], "needs --modality-dropout > 0"),
        (["--modality-dropout", "0", "--dropout-stream", "rgb"], "needs --modality-dropout > 0"),
    ],
)
def test_bench_tuning_refuses_settings_that_cannot_train(tmp_path, flags, message):
    """Refused before anything renders (the cache stays empty), not in a worker later."""
    from ivtuning_ros.bench.tuning import run as run_bench
    from ivtuning_ros.tools.cli import build_parser

    cache = tmp_path / "cache"
    args = build_parser().parse_args(["bench", "tuning", "--cache-dir", str(cache), *flags])
    with pytest.raises(ValueError, match=message):
        run_bench(args)
    assert not cache.exists()


def test_bench_tuning_runs_end_to_end(tmp_path):
    """Two modes on a few pairs for one epoch: every stage of the real benchmark runs
    (rendering with the bench's lens, training subprocesses, both test sets, JSON, plot);
    the figures themselves are for `docs/benchmarks.md`, not for a test. Seeds run
    apart and joined with --merge give the figures of the run over both."""
    import json

    from ivtuning_ros.tools.cli import main

    def bench(*args: str) -> None:
        common = ["--train-count", "4", "--val-count", "2", "--test-count", "2", "--epochs",
                  "1", "--batch-size", "2", "--lr", "thermal_only=0.002",
                  "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
        assert main(["bench", "tuning", *common, *args]) == 0

    out, plot = tmp_path / "tuning.json", tmp_path / "tuning.png"
    bench("--modes", "ivtuning,thermal_only", "--seeds", "0,1", "--json", str(out),
          "--plot", str(plot), "--modality-dropout", "0.5", "--dropout-stream", "rgb")  # fmt: skip
    report = json.loads(out.read_text())
    assert (report["modality_dropout"], report["dropout_stream"]) == (0.5, "rgb")
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
    # the fusion mode is also scored with each camera missing, the single-camera one is not
    assert all(0.0 <= iv[key] <= 1.0 for key in DEGRADED)
    assert {"seen_rgb_missing", "unseen_thermal_missing"} <= set(iv["runs"][0]["scores"])
    assert not any(key in th for key in DEGRADED)
    assert plot.stat().st_size > 0
    apart = [tmp_path / f"s{seed}.json" for seed in (0, 1)]
    for seed, path in zip((0, 1), apart, strict=True):
        bench("--modes", "thermal_only", "--seeds", str(seed), "--json", str(path),
              "--keep", str(tmp_path / "kept"))  # fmt: skip
    kept = tmp_path / "kept" / "thermal_only_s1"
    assert (kept / "best.safetensors").is_file() and not list(kept.glob("resume*"))
    assert json.loads((kept / "bench_result.json").read_text())["seed"] == 1
    merged = tmp_path / "merged.json"
    assert main(["bench", "tuning", "--merge", *map(str, apart), "--json", str(merged)]) == 0
    (joined,) = json.loads(merged.read_text())["modes"]
    for key in ("val_map50", "map50_seen", "map50_unseen", "map_unseen"):
        assert joined[key] == th[key], key
