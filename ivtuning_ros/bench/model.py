"""`ivtuning bench model`: what IV-tuning costs over the frozen RGB-only backbone, and
what it saves over the conventional dual-backbone design.

For each preset (default: EfficientNet-Lite0 with its real weights, and ViT-S with
random weights, which time the same) at the preset's input size, on CPU in eager torch:
- rgb_backbone: the frozen backbone on the RGB image alone,
- ivtuning: backbone + prompter on the RGB + thermal pair,
- dual_backbone: two backbones + per-level fusion,
first without the head (the comparison the targets are about: the head is identical in
all three), then end to end through each model's inference module (with head and
decoding). Variants run in interleaved rounds so a noisy neighbour hurts them alike.
FLOPs come from torch.utils.flop_counter.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from ivtuning_ros.bench.common import machine_info, percentiles_ms, write_json

TARGETS = {"ivtuning/rgb_backbone": 1.3, "ivtuning/dual_backbone": 0.7}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "model", help="latency and FLOPs: RGB-only backbone vs IV-tuning vs dual backbone"
    )
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    p.add_argument(
        "--presets",
        nargs="+",
        default=["default", "vit_small_det"],
        help="model presets (names in config/models or YAML files)",
    )
    p.add_argument("--runs", type=int, default=50, help="timed rounds per variant")
    p.add_argument("--warmup", type=int, default=5, help="untimed rounds per variant")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = torch default)")
    p.set_defaults(func=run)


def interleaved_times(
    fns: dict[str, Callable[[], object]], warmup: int, runs: int, desc: str
) -> dict[str, list[float]]:
    """Seconds per call of each function, timed in rounds (each function once per round)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in tqdm(range(runs), desc=desc, unit="round", leave=False):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def _variants(cfg, rgb: torch.Tensor, thermal: torch.Tensor, meta: bool) -> dict:
    """The timed calls: backbones/prompters without head, then each model end to end."""
    from ivtuning_ros.model import build_model
    from ivtuning_ros.model.stats import meta_model

    build = meta_model if meta else (lambda c: build_model(c).eval())
    models = {m: build(cfg.replace(mode=m)) for m in ("rgb_only", "ivtuning", "dual_backbone")}
    rgb_model = models["rgb_only"]
    variants: dict[str, Callable[[], object]] = {
        "rgb_backbone": lambda: rgb_model.backbone(rgb_model.backbone.normalize(rgb)),
        "ivtuning": lambda: models["ivtuning"].features(rgb, thermal),
        "dual_backbone": lambda: models["dual_backbone"].features(rgb, thermal),
    }
    for mode, model in models.items():
        module = model.inference_module()
        variants[f"{mode}_end_to_end"] = lambda m=module: m(rgb, thermal)
    return variants


def bench_preset(name: str, warmup: int, runs: int) -> dict:
    from ivtuning_ros.model import load_model_config
    from ivtuning_ros.model.stats import count_flops, example_pair

    cfg = load_model_config(name)
    # FLOPs from shapes alone (meta device), then real timings on CPU
    flops = {
        k: count_flops(fn) for k, fn in _variants(cfg, *example_pair(cfg, "meta"), True).items()
    }
    variants = _variants(cfg, *example_pair(cfg), False)
    with torch.inference_mode():
        times = interleaved_times(variants, warmup, runs, name)
    latency = {k: percentiles_ms(v) for k, v in times.items()}
    med = {k: v["p50_ms"] for k, v in latency.items()}
    ratios = {
        "latency": {
            "ivtuning/rgb_backbone": med["ivtuning"] / med["rgb_backbone"],
            "ivtuning/dual_backbone": med["ivtuning"] / med["dual_backbone"],
            "end_to_end ivtuning/rgb_only": med["ivtuning_end_to_end"] / med["rgb_only_end_to_end"],
            "end_to_end ivtuning/dual_backbone": med["ivtuning_end_to_end"]
            / med["dual_backbone_end_to_end"],
        },
        "flops": {
            "ivtuning/rgb_backbone": flops["ivtuning"] / flops["rgb_backbone"],
            "ivtuning/dual_backbone": flops["ivtuning"] / flops["dual_backbone"],
        },
    }
    return {
        "preset": name,
        "backbone": cfg.backbone,
        "weights": cfg.weights,
        "input_size": list(cfg.input_size),
        "latency_ms": latency,
        "flops": flops,
        "ratios": ratios,
        "targets": {k: {"target": v, "met": ratios["latency"][k] <= v} for k, v in TARGETS.items()},
    }


def print_preset(r: dict) -> None:
    h, w = r["input_size"]
    print(f"\n{r['preset']}: {r['backbone']} ({r['weights']}) at {h}x{w}, batch 1, CPU eager")
    print(f"  {'variant':28s} {'p50 ms':>8s} {'p95 ms':>8s} {'GFLOPs':>8s}")
    for k, lat in r["latency_ms"].items():
        print(f"  {k:28s} {lat['p50_ms']:8.2f} {lat['p95_ms']:8.2f} {r['flops'][k] / 1e9:8.3f}")
    for kind, ratios in r["ratios"].items():
        for k, v in ratios.items():
            target = TARGETS.get(k) if kind == "latency" else None
            note = f"  (target <= {target}: {'met' if v <= target else 'MISSED'})" if target else ""
            print(f"  {kind:8s} {k:36s} {v:6.3f}{note}")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    results = [bench_preset(name, args.warmup, args.runs) for name in args.presets]
    for r in results:
        print_preset(r)
    write_json(args.json, {"machine": machine_info(), "runs": args.runs, "presets": results})
    return 0
