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
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ivtuning_ros.bench.common import machine_info, write_json
from ivtuning_ros.data.dataset import DROPOUT_STREAMS
from ivtuning_ros.tools.argtypes import thermal_optics
from ivtuning_ros.train.config import parse_source, parse_train_config
from ivtuning_ros.types import CAMERAS

MODES = ("ivtuning", "full", "rgb_only", "thermal_only")
RECOMPUTE = "ivtuning_recompute"
# Optional variants of ivtuning (model config overrides on top of the preset's):
VARIANTS = {
    # recompute the frozen backbone's activations in backward instead of storing them
    # (grad_checkpointing: less memory, one more backbone forward per step)
    RECOMPUTE: {"mode": "ivtuning", "grad_checkpointing": True},
    # the paper's layout: the backbone sees the RGB image, the prompter the thermal one
    "ivtuning_rgb_primary": {"mode": "ivtuning", "primary_modality": "rgb"},
    # full fine-tuning that keeps the backbone's BN statistics (batch 4 ones are noisy)
    "full_frozen_bn": {"mode": "full", "freeze_backbone_bn": True},
}
FUSION_MODES = ("ivtuning", "full", *VARIANTS)
SEEN = ("clear_night", "light_fog")
UNSEEN = ("dense_fog",)
INPUT_HW = (192, 256)  # smaller than the node's 256x320 to fit four trainings in ~20 min
# A longer lens than the default scenes' (~35 instead of ~54 deg): at 192x256 the median
# object would otherwise be 15 px tall, too small to learn in a few minutes of CPU.
ZOOM = 1.6
# AdamW learning rate of each mode: the best validation mAP50 (mean of seeds 0, 1, 2) in a
# sweep at 20 epochs, thermal-only re-checked at 40 (docs/benchmarks.md). A variant trains
# at the rate of the mode it varies.
LEARNING_RATES = {"ivtuning": 0.012, "full": 0.012, "rgb_only": 0.016, "thermal_only": 0.012}
# Presets whose modes were swept apart, the same way at 40 epochs ("Backbone scale" in
# docs/benchmarks.md: best validation mean of seeds 0-2); a mode not listed trains at its
# LEARNING_RATES rate.
PRESET_LEARNING_RATES = {"efficientnet_lite2_det": {"ivtuning": 0.006, "full": 0.008}}
# The default recipe is the shipped model's: thermal cameras of varied sharpness (the soft
# fixed core is what that model was found to overfit) and one stream of a tenth of the
# fusion modes' training pairs blanked, which validation prefers for IV-tuning there and
# which keeps a model detecting when its RGB camera stops (docs/benchmarks.md, "Tuning").
THERMAL_OPTICS = "varied"
MODALITY_DROPOUT = 0.1
# --data real: MSRS (registered real road scenes) cut by name blocks (data/splits.py);
# selected on the validation blocks, scored on the test blocks (all, and night only).
# 384x512 keeps the small people of a 640x480 frame at 3/4 scale while twelve trainings
# fit an afternoon on two cores (the shipped model trains at 480x640).
REAL_INPUT_HW = (384, 512)
REAL_CLASSES = ["person", "car", "bicycle"]  # the shipped model's order; MSRS's is mapped
SPLIT_LABELS = {"synthetic": {"seen": "seen", "unseen": "unseen"},
                "real": {"seen": "test", "unseen": "night"}}  # fmt: skip


def base_mode(mode: str) -> str:
    return VARIANTS[mode]["mode"] if mode in VARIANTS else mode


def learning_rates(text: str | None, modes: list[str], preset: str = "default") -> dict[str, float]:
    """`--lr`: one rate for every mode ("0.004"), or rates for some modes
    ("ivtuning=0.008,full=0.004") while the others keep their defaults (the preset's)."""
    own = PRESET_LEARNING_RATES.get(preset, {})
    rates = {m: own.get(base_mode(m), LEARNING_RATES[base_mode(m)]) for m in modes}
    if not text:
        return rates
    if "=" not in text:
        return dict.fromkeys(modes, _positive_rate(text))
    for item in filter(None, (part.strip() for part in text.split(","))):
        mode, _, value = (part.strip() for part in item.partition("="))
        if mode not in rates:
            raise ValueError(f"--lr names mode {mode!r}, which is not in --modes {modes}")
        rates[mode] = _positive_rate(value)
    return rates


def _positive_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise ValueError(f"--lr: {text.strip()!r} is not a number") from None
    if not rate > 0:
        raise ValueError(f"--lr: a learning rate must be > 0, got {text.strip()}")
    return rate


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def real_config(args: argparse.Namespace) -> dict[str, Any]:
    """Real MSRS pairs: train / val / test blocks of the whole published set."""
    from ivtuning_ros.data.real import missing_reason, real_data_root

    problem = missing_reason(args.real_data)
    if problem:
        raise FileNotFoundError(f"--data real: {problem}")
    base = {"format": "msrs", "root": str(real_data_root(args.real_data)), "split": "train+test"}
    return {
        "model": {"preset": args.preset,
                  "overrides": {"input_size": list(REAL_INPUT_HW), "class_names": REAL_CLASSES}},
        "data": {"train": {**base, "blocks": "train"}, "val": {**base, "blocks": "val"}},
        "train": {"epochs": _or(args.epochs, 24), "batch_size": _or(args.batch_size, 8),
                  "weight_decay": 0.05, "warmup_steps": 20, "seed": 0, "amp": "off",
                  "threads": args.threads},
        "tests": {"seen": {**base, "blocks": "test"},
                  "unseen": {**base, "blocks": "test", "group": "night"}},
    }  # fmt: skip


def bench_config(args: argparse.Namespace, cache: Path) -> dict[str, Any]:
    if args.data == "real":
        return real_config(args)
    size = [INPUT_HW[1], INPUT_HW[0]]

    def synth(conditions: tuple[str, ...], count: int, seed: int) -> dict[str, Any]:
        return {"synthetic": {"conditions": list(conditions), "count": count, "seed": seed,
                              "size": size, "zoom": args.zoom,
                              "thermal_optics": args.thermal_optics}}  # fmt: skip

    return {
        "model": {"preset": args.preset, "overrides": {"input_size": list(INPUT_HW)}},
        "data": {
            "cache_dir": str(cache),
            "train": synth(SEEN, args.train_count, 101),
            "val": synth(SEEN, args.val_count, 102),
        },
        "train": {
            "epochs": _or(args.epochs, 40),
            "batch_size": _or(args.batch_size, 4),
            "weight_decay": 0.05,
            "warmup_steps": 10,
            "seed": 0,  # each run sets its own (--seeds)
            "amp": "off",
            "threads": args.threads,
        },
        "tests": {
            "seen": synth(SEEN, args.test_count, 103),
            "unseen": synth(UNSEEN, args.test_count, 104),
        },
    }


def _rss_now_kib() -> int:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() // 1024


def run_worker(spec_path: Path, out_path: Path) -> None:
    """One mode, in its own process: train, then score the best checkpoint on both tests."""
    import torch

    from ivtuning_ros.data.classes import Relabeled, match_classes
    from ivtuning_ros.data.dataset import PreparedDataset
    from ivtuning_ros.model.checkpoint import load_checkpoint
    from ivtuning_ros.train.data import open_source
    from ivtuning_ros.train.trainer import evaluate_model, train

    spec = json.loads(spec_path.read_text())
    tests = spec.pop("tests")
    run_dir = Path(spec.pop("run_dir"))
    bench_mode = spec.pop("bench_mode")
    cfg = parse_train_config(spec)
    baseline: dict[str, int] = {}

    def on_step(step: int, loss: float) -> None:
        if step == 1:
            baseline["rss_after_first_step_kib"] = _rss_now_kib()

    rss_before = _rss_now_kib()
    t0 = time.perf_counter()
    result = train(cfg, run_dir, on_step=on_step, progress=False)
    train_s = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    model, info = load_checkpoint(result.best_checkpoint)
    scores = {}
    cache = Path(cfg.data.cache_dir) if cfg.data.cache_dir else Path(tempfile.gettempdir())
    # a fusion model is also scored with each camera missing (the node's degraded mode)
    missing = CAMERAS if bench_mode in FUSION_MODES else ()
    for name, src in tests.items():
        samples = open_source(
            parse_source(src, f"tests.{name}"), cache, skip_bad=False, progress=False,
            block_split=cfg.data.block_split,
        )  # fmt: skip
        cmap = match_classes(samples.class_names, info.config.class_names, exact=True)
        samples = Relabeled(samples, cmap)  # e.g. MSRS's (person, bicycle, car) order
        prepare = (samples, info.config.input_size, info.config.thermal_norm, "detection")
        sets = {name: PreparedDataset(*prepare)}
        for camera in missing:  # dropping a stream from every pair blanks it as the node does
            sets[f"{name}_{camera}_missing"] = PreparedDataset(
                *prepare, modality_dropout=1.0, dropout_stream=camera
            )
        for key, ds in sets.items():
            scores[key] = evaluate_model(
                model, ds, 8, cfg.train.val_score_threshold, torch.device("cpu")
            )
    steps = np.asarray(result.step_times_s[3:] or result.step_times_s)
    report = {
        "mode": bench_mode,
        "grad_checkpointing": bool(info.config.grad_checkpointing and model.frozen),
        "primary_modality": info.config.primary_modality,
        "parameters": result.parameters,
        "lr": cfg.train.lr,
        "best_epoch": result.best_epoch,
        "val_map50": result.best_metric,
        "map50_seen": scores["seen"]["map50"],
        "map50_unseen": scores["unseen"]["map50"],
        "map_seen": scores["seen"]["map"],
        "map_unseen": scores["unseen"]["map"],
        **{f"map50_{key}": s["map50"] for key, s in scores.items() if key.endswith("_missing")},
        "scores": scores,
        "peak_rss_mib": peak_kib / 1024,
        "rss_before_training_mib": rss_before / 1024,
        "peak_training_increase_mib": (peak_kib - rss_before) / 1024,
        "step_ms_median": float(np.median(steps) * 1e3),
        "step_ms_mean": float(np.mean(steps) * 1e3),
        "steps": len(result.step_times_s),
        "train_s": train_s,
    }
    out_path.write_text(json.dumps(report, indent=1, default=str))


# per-run figures that a mode's row reports as their mean over its seeds
AVERAGED = ("val_map50", "map50_seen", "map50_unseen", "map_seen", "map_unseen",
            "peak_rss_mib", "rss_before_training_mib", "peak_training_increase_mib",
            "step_ms_median", "step_ms_mean", "train_s")  # fmt: skip


# a fusion mode's mAP50 with one camera missing at test time (reports before 2026-11-30
# lack them: a row has a mean only where every one of its runs has the figure)
DEGRADED = tuple(f"map50_{split}_{camera}_missing" for split in ("seen", "unseen")
                 for camera in CAMERAS)  # fmt: skip


def combine_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One mode's row from its runs (one per seed): means, the worst seed's mAP50, and
    every run kept under "runs"."""
    per_run = (*AVERAGED, *DEGRADED, "scores", "best_epoch", "seed")
    row = {k: v for k, v in runs[0].items() if k not in per_run}
    row.update({k: float(np.mean([r[k] for r in runs])) for k in AVERAGED})
    row.update(
        {k: float(np.mean([r[k] for r in runs])) for k in DEGRADED if all(k in r for r in runs)}
    )
    for split in ("seen", "unseen"):
        row[f"map50_{split}_min"] = min(r[f"map50_{split}"] for r in runs)
    row["seeds"] = [r["seed"] for r in runs]
    row["runs"] = runs
    return row


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["modes"]
    names = [r["mode"] for r in rows]
    x = np.arange(len(names))
    degraded = [r for r in rows if DEGRADED[0] in r]
    fig, axes = plt.subplots(1, 3 + bool(degraded), figsize=(13 + 4 * bool(degraded), 3.8))
    real = report.get("data") == "real"
    labels = (("seen", "MSRS test blocks"), ("unseen", "night test blocks")) if real else (
        ("seen", "seen conditions"), ("unseen", f"unseen ({UNSEEN[0]})"))  # fmt: skip
    for offset, (split, label) in zip((-0.2, 0.2), labels, strict=True):
        means = np.array([r[f"map50_{split}"] for r in rows])
        low = means - [r[f"map50_{split}_min"] for r in rows]
        high = [max(run[f"map50_{split}"] for run in r["runs"]) for r in rows] - means
        axes[0].bar(x + offset, means, 0.4, yerr=[low, high], capsize=3, label=label)
    seeds = report["seeds"]
    axes[0].set_title(
        "mAP50" + (f" (mean, min-max over {len(seeds)} seeds)" if len(seeds) > 1 else "")
    )
    axes[0].legend(fontsize=8)
    axes[1].bar(x, [r["peak_training_increase_mib"] for r in rows], color="tab:red")
    axes[1].set_title("peak training memory (RSS increase, MiB)")
    axes[2].bar(x, [r["step_ms_median"] for r in rows], color="tab:green")
    axes[2].set_title("time per step (ms, median)")
    for ax in axes[:3]:
        ax.set_xticks(x, names, rotation=25, ha="right")
        ax.grid(axis="y", alpha=0.3)
    if degraded:
        _plot_camera_failure(axes[3], rows, degraded)
    train = report["config"]["data"]["train"]
    dropout = report.get("modality_dropout", 0.0)
    data = (
        "real MSRS road scenes (train blocks)"
        if real
        else f"{train['synthetic']['count']} training pairs ({' + '.join(SEEN)}), "
        f"{train['synthetic'].get('thermal_optics', 'fixed')} thermal optics"
    )
    fig.suptitle(
        f"{report['preset']} detection, {data}, {report['config']['train']['epochs']} epochs"
        + (
            f", fusion modes' modality dropout "
            f"{_dropout_text(dropout, report.get('dropout_stream', 'either'))}"
            if dropout
            else ""
        )
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def paired_by_seed(a: dict[str, Any], b: dict[str, Any], key: str) -> dict[str, Any] | None:
    """a's `key` minus b's, seed by seed, over the seeds both modes ran (None below two).

    Two modes trained with one seed share the data order and the head's initialisation,
    so each seed's difference compares like with like: the mean difference, its standard
    error and the count of seeds ahead say how firmly a comparison of means stands."""
    a_runs = {r["seed"]: r[key] for r in a.get("runs", [])}
    b_runs = {r["seed"]: r[key] for r in b.get("runs", [])}
    seeds = sorted(a_runs.keys() & b_runs.keys())
    if len(seeds) < 2:
        return None
    diffs = np.array([a_runs[s] - b_runs[s] for s in seeds])
    return {
        "differences": {str(s): float(d) for s, d in zip(seeds, diffs, strict=True)},
        "mean": float(diffs.mean()),
        "standard_error": float(diffs.std(ddof=1) / np.sqrt(len(diffs))),
        "ahead": int((diffs > 0).sum()),
        "seeds": len(seeds),
    }


def _map50_target(a: dict[str, Any], b: dict[str, Any], split: str, at_least: bool) -> dict:
    key = f"map50_{split}"
    x, y = a[key], b[key]
    target: dict[str, Any] = {"value": f"{x:.3f} vs {y:.3f}", "met": x >= y if at_least else x > y}
    paired = paired_by_seed(a, b, key)
    if paired:
        target["paired"] = paired
    return target


def targets(
    rows: dict[str, dict[str, Any]], labels: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """The paper's claims as checks; `labels` name the two test splits (SPLIT_LABELS)."""
    labels = labels or SPLIT_LABELS["synthetic"]
    iv, full = rows.get("ivtuning"), rows.get("full")
    out: dict[str, dict[str, Any]] = {}
    if iv and full:
        out[f"{labels['unseen']} mAP50 ivtuning >= full"] = _map50_target(
            iv, full, "unseen", at_least=True
        )
        if labels["seen"] != "seen":  # real data: the whole test set is the claim too
            out[f"{labels['seen']} mAP50 ivtuning >= full"] = _map50_target(
                iv, full, "seen", at_least=True
            )
        mem = iv["peak_training_increase_mib"] / max(full["peak_training_increase_mib"], 1e-9)
        out["peak training memory ivtuning <= 0.6x full"] = {"value": round(mem, 3),
                                                             "met": mem <= 0.6}  # fmt: skip
        step = iv["step_ms_median"] / full["step_ms_median"]
        out["time per step ivtuning <= 0.8x full"] = {"value": round(step, 3), "met": step <= 0.8}
    ck = rows.get(RECOMPUTE)
    if ck and full:  # the memory-saving variant: trades time for memory, so memory only
        mem = ck["peak_training_increase_mib"] / max(full["peak_training_increase_mib"], 1e-9)
        out[f"peak training memory {RECOMPUTE} <= 0.6x full"] = {
            "value": round(mem, 3), "met": mem <= 0.6,
        }  # fmt: skip
    for single in ("rgb_only", "thermal_only"):
        if iv and single in rows:
            for split in ("seen", "unseen"):
                out[f"{labels[split]} mAP50 ivtuning > {single}"] = _map50_target(
                    iv, rows[single], split, at_least=False
                )
    return out


def format_table(report: dict[str, Any]) -> str:
    seen, unseen = (report.get("split_labels") or SPLIT_LABELS["synthetic"]).values()
    head = (f"{'mode':<21}{'trainable':>11}{'lr':>8}{'peak RSS':>10}{'train +':>9}"
            f"{'ms/step':>9}{'mAP50 ' + seen:>12}{unseen:>8}{'mAP ' + seen:>10}"
            f"{'val':>7}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in report["modes"]:
        lines.append(
            f"{r['mode']:<21}{r['parameters']['trainable']:>11,}{r['lr']:>8g}"
            f"{r['peak_rss_mib']:>8.0f}Mi"
            f"{r['peak_training_increase_mib']:>7.0f}Mi{r['step_ms_median']:>9.0f}"
            f"{r['map50_seen']:>12.3f}{r['map50_unseen']:>8.3f}{r.get('map_seen', np.nan):>10.3f}"
            f"{r['val_map50']:>7.3f}"
        )
    if len(report["seeds"]) > 1:
        lines += ["", f"means over seeds {report['seeds']}; mAP50 {seen} / {unseen} of each run:"]
        for r in report["modes"]:
            runs = "  ".join(
                f"s{run['seed']} {run['map50_seen']:.3f}/{run['map50_unseen']:.3f}"
                for run in r["runs"]
            )
            lines.append(f"  {r['mode']:<21}{runs}")
    degraded = [r for r in report["modes"] if DEGRADED[0] in r]
    if degraded:
        lines += ["", "one camera missing at test time (the node's degraded mode), mAP50 "
                  f"{seen} / {unseen}:"]  # fmt: skip
        for r in degraded:
            lines.append(
                f"  {r['mode']:<21}"
                + "   ".join(
                    f"{camera} missing {r[f'map50_seen_{camera}_missing']:.3f}"
                    f"/{r[f'map50_unseen_{camera}_missing']:.3f}"
                    for camera in CAMERAS
                )
            )
    lines.append("")
    for name, t in report["targets"].items():
        line = f"[{'met' if t['met'] else 'MISSED'}] {name}: {t['value']}"
        if "paired" in t:
            p = t["paired"]
            line += (
                f" (paired by seed: {p['mean']:+.3f}, standard error {p['standard_error']:.3f};"
                f" ivtuning ahead on {p['ahead']} of {p['seeds']})"
            )
        lines.append(line)
    return "\n".join(lines)


def _plot_camera_failure(ax, rows: list[dict[str, Any]], degraded: list[dict[str, Any]]) -> None:
    """Seen-test mAP50 of the fusion modes with both cameras and with each one missing,
    against the single-camera models trained for that case (dashed)."""
    x = np.arange(len(degraded))
    bars = [("both cameras", "map50_seen")]
    bars += [(f"{camera} missing", f"map50_seen_{camera}_missing") for camera in CAMERAS]
    for i, (label, key) in enumerate(bars):
        ax.bar(x + (i - 1) * 0.27, [r[key] for r in degraded], 0.27, label=label)
    styles = {"rgb_only": "--", "thermal_only": ":"}
    for r in rows:
        if r["mode"] in styles:
            ax.axhline(r["map50_seen"], color="k", ls=styles[r["mode"]], lw=1,
                       label=f"{r['mode']} model")  # fmt: skip
    ax.set_xticks(x, [r["mode"] for r in degraded], rotation=25, ha="right")
    ax.set_title("one camera missing (mAP50, seen test)")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    """What must match for two reports' runs to be joined: everything but where the
    synthetic sets were cached (the modality dropout is checked apart: _fusion_dropout)."""
    config = json.loads(json.dumps(report["config"]))
    config["data"].pop("cache_dir", None)
    return {"benchmark": report.get("benchmark"), "preset": report.get("preset"), "config": config}


def _fusion_dropout(report: dict[str, Any]) -> tuple[float, str] | None:
    """The modality dropout (rate, stream) the report's fusion modes trained with; None
    where it trained none: single-camera modes never blank a stream, so their runs join
    any dropout's."""
    if not any(row["mode"] in FUSION_MODES for row in report["modes"]):
        return None
    rate = report.get("modality_dropout", 0.0)
    return rate, (report.get("dropout_stream", "either") if rate else "either")


def _dropout_text(rate: float, stream: str) -> str:
    return f"{rate:g}" + ("" if stream == "either" else f" of the {stream} stream")


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Dotted keys at which two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d
            for k in sorted(set(a) | set(b))
            for d in _differences(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        ]
    return [] if a == b else [path]


def merge_reports(reports: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """(name, report) pairs from runs of different seeds or modes, as one report: each
    mode's runs joined and averaged, the targets re-checked on the joined means. Refuses
    runs that differ in anything but their seeds and modes (data, schedule, a mode's
    learning rate, the fusion modes' modality dropout)."""
    first_name, first = reports[0]
    if first.get("benchmark") != "tuning":
        raise ValueError(f"{first_name}: not a bench tuning report")
    runs: dict[str, list[dict[str, Any]]] = {}
    where: dict[tuple[str, int], str] = {}
    rates: dict[str, float] = {}
    fusion: tuple[tuple[float, str], str] | None = None  # fusion modes' dropout, its report
    reference = _comparable(first)
    for name, report in reports:
        diff = _differences(reference, _comparable(report))
        if diff:
            raise ValueError(f"{name} and {first_name} differ in {', '.join(diff)}: not joinable")
        dropout = _fusion_dropout(report)
        if dropout is not None:
            fusion = fusion or (dropout, name)
            if dropout != fusion[0]:
                raise ValueError(
                    f"{fusion[1]} trained the fusion modes at modality dropout "
                    f"{_dropout_text(*fusion[0])}, {name} at {_dropout_text(*dropout)}"
                )
        for row in report["modes"]:
            mode = row["mode"]
            if rates.setdefault(mode, row["lr"]) != row["lr"]:
                raise ValueError(
                    f"{name}: {mode} trained at lr {row['lr']:g}, elsewhere at {rates[mode]:g}"
                )
            for r in row["runs"]:
                key = (mode, r["seed"])
                if key in where:
                    raise ValueError(f"{mode} seed {r['seed']} is in both {where[key]} and {name}")
                where[key] = name
                runs.setdefault(mode, []).append(r)
    seeds = {m: sorted(r["seed"] for r in rs) for m, rs in runs.items()}
    if len({tuple(v) for v in seeds.values()}) > 1:
        raise ValueError(f"the modes have different seeds, so their means do not compare: {seeds}")
    order = sorted(runs, key=lambda m: (*MODES, *VARIANTS).index(m))
    rows = {m: combine_seeds(sorted(runs[m], key=lambda r: r["seed"])) for m in order}
    return {
        **{k: first[k] for k in ("benchmark", "preset", "seen_conditions", "unseen_conditions")},
        "data": first.get("data", "synthetic"),
        "split_labels": first.get("split_labels", SPLIT_LABELS["synthetic"]),
        "modality_dropout": fusion[0][0] if fusion else 0.0,
        "dropout_stream": fusion[0][1] if fusion else "either",
        "seeds": seeds[order[0]],
        "learning_rates": {m: rates[m] for m in order},
        "config": first["config"],
        "modes": list(rows.values()),
        "targets": targets(rows, first.get("split_labels")),
        "wall_s": sum(r["wall_s"] for _, r in reports),
        "merged_from": [
            {"file": n, "command": r.get("command"), "seeds": r["seeds"], "machine": r["machine"]}
            for n, r in reports
        ],
        "command": "ivtuning bench tuning --merge " + " ".join(n for n, _ in reports),
    }


def _publish(report: dict[str, Any], args: argparse.Namespace) -> None:
    print(format_table(report))
    write_json(args.json, report)
    if args.plot:
        plot(report, Path(args.plot))


def run_specs(
    config: dict[str, Any],
    modes: list[str],
    seeds: list[int],
    lrs: dict[str, float],
    args: argparse.Namespace,
) -> dict[tuple[str, int], dict[str, Any]]:
    """Each (mode, seed)'s training config, parsed here as its worker will parse it, so a
    setting that cannot train fails before anything renders, with the config's message."""
    specs = {}
    for mode in modes:
        for seed in seeds:
            spec = json.loads(json.dumps(config))
            spec["model"]["overrides"].update(VARIANTS.get(mode, {"mode": mode}))
            if mode in FUSION_MODES:  # a single-modality model has no second stream
                spec["train"]["modality_dropout"] = args.modality_dropout
                spec["train"]["dropout_stream"] = args.dropout_stream
            spec["train"]["seed"] = seed
            spec["train"]["lr"] = lrs[mode]
            parse_train_config({k: v for k, v in spec.items() if k != "tests"})
            specs[mode, seed] = spec
    return specs


def modality_dropout(asked: float | None, modes: list[str]) -> float:
    """The fusion modes' dropout: MODALITY_DROPOUT unless asked otherwise, and none for a
    run of single-camera modes only, which have no second stream to blank."""
    fusion = set(modes) & set(FUSION_MODES)
    if asked is None:
        return MODALITY_DROPOUT if fusion else 0.0
    if asked and not fusion:
        raise ValueError(
            f"--modality-dropout applies to the two-camera modes ({', '.join(FUSION_MODES)}); "
            f"--modes {','.join(modes)} has none"
        )
    return asked


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
                spec_path, out_path = Path(tmp) / f"{name}.json", Path(tmp) / f"{name}.out.json"
                spec_path.write_text(json.dumps(spec))
                print(f"bench tuning: training {mode}, seed {seed} ...", flush=True)
                t0 = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, "-m", "ivtuning_ros.bench.tuning", "--worker",
                     str(spec_path), str(out_path)],
                    capture_output=True, text=True,
                )  # fmt: skip
                if proc.returncode != 0:
                    raise RuntimeError(
                        f"bench tuning: mode {mode} seed {seed} failed:\n{proc.stderr[-4000:]}"
                    )
                r = {**json.loads(out_path.read_text()), "seed": seed}
                runs.append(r)
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
        "--data", choices=("synthetic", "real"), default="synthetic",
        help="synthetic night/fog scenes (seen / unseen conditions), or real MSRS road "
        "scenes cut by name blocks (test: all test blocks; night: their night pairs)",
    )  # fmt: skip
    p.add_argument(
        "--real-data", default=None, metavar="DIR",
        help="the MSRS folder for --data real (default: $IVTUNING_REAL_DATA, else "
        "../shared/data/msrs)",
    )  # fmt: skip
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
        "--merge", nargs="+", type=Path, metavar="JSON",
        help="instead of training: join the --json reports of runs with different seeds "
        "(same settings otherwise) into one table, JSON and plot",
    )  # fmt: skip
    p.set_defaults(func=run)


if __name__ == "__main__":  # a mode's worker process, started by `run`
    if len(sys.argv) != 4 or sys.argv[1] != "--worker":
        sys.exit("usage: python -m ivtuning_ros.bench.tuning --worker SPEC.json OUT.json")
    run_worker(Path(sys.argv[2]), Path(sys.argv[3]))
