"""What `ivtuning bench tuning` trains: modes, learning rates and each run's config."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ivtuning_ros.train.config import parse_train_config

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
    # two backbones, one per camera, fused per level by 1x1 convolutions; all trains
    "dual_backbone": {"mode": "dual_backbone"},
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
# (dual_backbone trains everything, as full does: full's rate, not swept)
LEARNING_RATES = {"ivtuning": 0.012, "full": 0.012, "rgb_only": 0.016, "thermal_only": 0.012,
                  "dual_backbone": 0.012}  # fmt: skip

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

SPLIT_LABELS = {
    "synthetic": {"seen": "seen", "unseen": "unseen"},
    "real": {"seen": "test", "unseen": "night"},
}


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
        return {
            "synthetic": {
                "conditions": list(conditions),
                "count": count,
                "seed": seed,
                "size": size,
                "zoom": args.zoom,
                "thermal_optics": args.thermal_optics,
            }
        }

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
