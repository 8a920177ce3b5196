"""One training of `ivtuning bench tuning`, in a process of its own (its peak memory is
its own): train, then score the best checkpoint on the test splits."""

from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from ivtuning_ros.bench.tuning.recipe import FUSION_MODES
from ivtuning_ros.train.config import parse_source, parse_train_config
from ivtuning_ros.types import CAMERAS


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
    from ivtuning_ros.train.trainer import train, validate

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
            parse_source(src, f"tests.{name}"),
            cache,
            skip_bad=False,
            progress=False,
            block_split=cfg.data.block_split,
        )
        cmap = match_classes(samples.class_names, info.config.class_names, exact=True)
        samples = Relabeled(samples, cmap)  # e.g. MSRS's (person, bicycle, car) order
        prepare = (samples, info.config.input_size, info.config.thermal_norm, "detection")
        sets = {name: PreparedDataset(*prepare)}
        for camera in missing:  # dropping a stream from every pair blanks it as the node does
            sets[f"{name}_{camera}_missing"] = PreparedDataset(
                *prepare, modality_dropout=1.0, dropout_stream=camera
            )
        for key, ds in sets.items():
            scores[key] = validate(model, ds, 8, cfg.train.val_score_threshold, torch.device("cpu"))
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
