"""`ivtuning bench tuning`: IV-tuning vs full fine-tuning vs single-modality training.

Detection on synthetic night scenes: a small training set from one group of conditions
(clear night + light fog), validation from the same group (checkpoint selection), and two
test sets: held-out pairs of the SEEN conditions and pairs of an UNSEEN condition (dense
fog). Every mode trains the same head with the same data order, seeds, epochs and batch
size, each at its own learning rate, chosen on validation (as any method is tuned before
it is compared). By default every split's thermal camera has a sharpness of its own and the
fusion modes train with modality dropout 0.1, the shipped model's recipe;
`--thermal-optics fixed --modality-dropout 0` is the setting of the older tables. With
several training seeds (`--seeds 0,1,2`) each mode's figures are means over the seeds, and
the targets compare the means: on 200 pairs one seed's mAP50 moves by several points.
Each run is a fresh subprocess, so its peak resident memory (the RSS high-water mark from
getrusage) belongs to that training alone. Training is deterministic per seed, so seeds
may be run in separate sessions and joined afterwards (`--merge A.json B.json`): the same
table as one run over all the seeds. The fusion modes are also scored on both test sets
with each camera missing (the node's degraded mode), next to the single-camera models
trained for that case.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ivtuning_ros.bench.common import machine_info, write_json
from ivtuning_ros.bench.tuning.plots import plot
from ivtuning_ros.bench.tuning.recipe import (
    LEARNING_RATES,
    MODALITY_DROPOUT,
    MODES,
    PRESET_LEARNING_RATES,
    SEEN,
    SPLIT_LABELS,
    THERMAL_OPTICS,
    UNSEEN,
    VARIANTS,
    ZOOM,
    bench_config,
    learning_rates,
    modality_dropout,
    run_specs,
)
from ivtuning_ros.bench.tuning.results import (
    combine_seeds,
    format_table,
    merge_reports,
    targets,
)
from ivtuning_ros.data.dataset import DROPOUT_STREAMS
from ivtuning_ros.tools.argtypes import thermal_optics
from ivtuning_ros.train.config import parse_source


def _publish(report: dict[str, Any], args: argparse.Namespace) -> None:
    print(format_table(report))
    write_json(args.json, report)
    if args.plot:
        plot(report, Path(args.plot))


def _train_in_worker(spec: dict[str, Any], tmp: Path, name: str) -> dict[str, Any]:
    """Train and score one mode and seed in a fresh process (its own peak memory)."""
    spec_path, out_path = tmp / f"{name}.json", tmp / f"{name}.out.json"
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "ivtuning_ros.bench.tuning", "--worker", str(spec_path),
           str(out_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"bench tuning: mode {spec['bench_mode']} ({name}) failed:\n{proc.stderr[-4000:]}"
        )
    return json.loads(out_path.read_text())


def run(args: argparse.Namespace) -> int:
    from ivtuning_ros.train.data import default_cache_dir, ensure_synthetic

    if args.merge:
        reports = [(str(p), json.loads(Path(p).read_text())) for p in args.merge]
        _publish(merge_reports(reports), args)
        return 0
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds needs distinct integers, got {args.seeds!r}")
    bad = [m for m in modes if m not in (*MODES, *VARIANTS)]
    if bad:
        raise ValueError(f"unknown mode(s) {bad}; choose from {', '.join((*MODES, *VARIANTS))}")
    args.modality_dropout = modality_dropout(args.modality_dropout, modes)
    if args.dropout_stream != "either" and not args.modality_dropout:
        raise ValueError(f"--dropout-stream {args.dropout_stream} needs --modality-dropout > 0")
    lrs = learning_rates(args.lr, modes, args.preset)
    cache = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    config = bench_config(args, cache)
    specs = run_specs(config, modes, seeds, lrs, args)
    t_start = time.perf_counter()
    # Render every synthetic split once, up front, so no mode pays for it.
    for src in [config["data"]["train"], config["data"]["val"], *config["tests"].values()]:
        if "synthetic" in src:
            ensure_synthetic(parse_source(src).synthetic, cache)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="ivtuning_bench_") as tmp:
        for mode in modes:
            runs = []
            for seed in seeds:
                name = f"{mode}_s{seed}"
                spec = {**specs[mode, seed], "run_dir": str(Path(tmp) / name), "bench_mode": mode}
                print(f"bench tuning: training {mode}, seed {seed} ...", flush=True)
                t0 = time.perf_counter()
                r = {**_train_in_worker(spec, Path(tmp), name), "seed": seed}
                runs.append(r)
                if args.keep is not None:  # the trained checkpoints outlive the run
                    kept = args.keep / name
                    ignore = shutil.ignore_patterns("resume*")
                    shutil.copytree(Path(tmp) / name, kept, dirs_exist_ok=True, ignore=ignore)
                    (kept / "bench_result.json").write_text(json.dumps(r, indent=1))
                labels = SPLIT_LABELS[args.data]
                print(
                    f"  {mode}: mAP50 {labels['seen']} {r['map50_seen']:.3f} {labels['unseen']} "
                    f"{r['map50_unseen']:.3f}"
                    f", peak +{r['peak_training_increase_mib']:.0f} MiB, "
                    f"{r['step_ms_median']:.0f} ms/step ({time.perf_counter() - t0:.0f} s)"
                )
            rows[mode] = combine_seeds(runs)
    real = args.data == "real"
    report = {
        "benchmark": "tuning",
        "preset": args.preset,
        "data": args.data,
        "split_labels": SPLIT_LABELS[args.data],
        "seen_conditions": ["MSRS test blocks, day and night"] if real else list(SEEN),
        "unseen_conditions": ["MSRS test blocks, night"] if real else list(UNSEEN),
        "modality_dropout": args.modality_dropout,
        "dropout_stream": args.dropout_stream,
        "seeds": seeds,
        "learning_rates": lrs,
        "config": config,
        "modes": [rows[m] for m in modes],
        "targets": targets(rows, SPLIT_LABELS[args.data]),
        "wall_s": time.perf_counter() - t_start,
        "machine": machine_info(),
        "command": "ivtuning bench tuning " + " ".join(sys.argv[3:]),
    }
    _publish(report, args)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tuning",
        help="IV-tuning vs full fine-tuning vs RGB-only vs thermal-only (detection)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--plot", type=Path, default=None, help="bar charts (PNG)")
    p.add_argument(
        "--keep",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep every run's checkpoints and logs in DIR/<mode>_s<seed>/",
    )
    p.add_argument(
        "--data",
        choices=("synthetic", "real"),
        default="synthetic",
        help="synthetic night/fog scenes (seen / unseen conditions), or real MSRS road "
        "scenes cut by name blocks (test: all test blocks; night: their night pairs)",
    )
    p.add_argument(
        "--real-data",
        default=None,
        metavar="DIR",
        help="the MSRS folder for --data real (default: $IVTUNING_REAL_DATA, else "
        "../shared/data/msrs)",
    )
    p.add_argument("--modes", default=",".join(MODES), help=f"also: {', '.join(VARIANTS)}")
    p.add_argument("--preset", default="default", help="model preset (the detection head)")
    p.add_argument("--train-count", type=int, default=200)
    p.add_argument("--val-count", type=int, default=40)
    p.add_argument("--test-count", type=int, default=150)
    # 40: at 20 the modes with more to learn were still improving (docs/benchmarks.md)
    p.add_argument("--epochs", type=int, default=None, help="default 40 (real: 24)")
    p.add_argument("--batch-size", type=int, default=None, help="default 4 (real: 8)")
    p.add_argument(
        "--lr",
        default=None,
        help="AdamW learning rate: one for every mode (0.004) or per mode "
        "(ivtuning=0.008,full=0.004); default: each mode's, chosen on validation "
        f"({', '.join(f'{m} {v:g}' for m, v in LEARNING_RATES.items())}; "
        + "; ".join(
            f"{preset}: {', '.join(f'{m} {v:g}' for m, v in rates.items())}"
            for preset, rates in PRESET_LEARNING_RATES.items()
        )
        + ")",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument(
        "--modality-dropout",
        type=float,
        default=None,
        help="blank one stream of this share of training pairs (fusion modes only; "
        f"default {MODALITY_DROPOUT:g}, 0 turns it off)",
    )
    p.add_argument(
        "--dropout-stream",
        choices=DROPOUT_STREAMS,
        default="either",
        help="the stream modality dropout blanks: either (at random), rgb or thermal",
    )
    p.add_argument(
        "--seeds",
        default="0",
        help="training seeds, comma-separated (initialisation, data order): each mode trains "
        "once per seed and reports the means",
    )
    p.add_argument("--zoom", type=float, default=ZOOM, help="synthetic camera focal multiplier")
    p.add_argument(
        "--thermal-optics",
        type=thermal_optics,
        default=THERMAL_OPTICS,
        help="the synthetic thermal camera of every split (see make-data): varied (each "
        "scene draws its sharpness), or fixed, the soft core of the older tables in "
        "docs/benchmarks.md",
    )
    p.add_argument("--cache-dir", default=None, help="where the synthetic sets are rendered")
    p.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="instead of training: join the --json reports of runs with different seeds "
        "(same settings otherwise) into one table, JSON and plot",
    )
    p.set_defaults(func=run)
