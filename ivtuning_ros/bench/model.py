"""`ivtuning bench model`: what IV-tuning costs over the frozen RGB-only backbone, and
what it saves over the conventional dual-backbone design.

For each preset (default: EfficientNet-Lite0 with its real weights, and ViT-S with
random weights, which time the same) at the preset's input size, batch 1, on CPU:
- rgb_backbone: the frozen backbone on the RGB image alone,
- ivtuning: backbone + prompter on the RGB + thermal pair,
- dual_backbone: two backbones + per-level fusion,
first without the head (the comparison the targets are about: the head is identical in
all three), then end to end through each model's inference module (head + decoding).
Each variant runs in eager torch and, exported (torch.onnx dynamo), in ONNX Runtime, the
node's CPU backend. Variants run in interleaved rounds so a noisy neighbour hurts them
alike. FLOPs come from torch.utils.flop_counter on the meta device.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ivtuning_ros.bench.common import machine_info, percentiles_ms, write_json

TARGETS = {"ivtuning/rgb_backbone": 1.3, "ivtuning/dual_backbone": 0.7}
BACKENDS = ("torch", "onnxruntime")


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
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument("--runs", type=int, default=50, help="timed rounds per variant")
    p.add_argument("--warmup", type=int, default=5, help="untimed rounds per variant")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = default)")
    p.set_defaults(func=run)


class _Call(nn.Module):
    """One timed variant as a module of (rgb, thermal) returning a tuple of tensors."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], object], *owned: nn.Module):
        super().__init__()
        self.owned = nn.ModuleList(owned)
        self.fn = fn

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.fn(rgb, thermal))


def _variants(cfg, meta: bool) -> dict[str, nn.Module]:
    from ivtuning_ros.model import build_model
    from ivtuning_ros.model.stats import meta_model

    build = meta_model if meta else (lambda c: build_model(c).eval())
    models = {m: build(cfg.replace(mode=m)) for m in ("rgb_only", "ivtuning", "dual_backbone")}
    rgb_b = models["rgb_only"].backbone
    iv, dual = models["ivtuning"], models["dual_backbone"]
    variants: dict[str, nn.Module] = {
        "rgb_backbone": _Call(lambda r, t: rgb_b(rgb_b.normalize(r)), rgb_b),
        "ivtuning": _Call(iv.features, iv),
        "dual_backbone": _Call(dual.features, dual),
    }
    for mode, model in models.items():
        variants[f"{mode}_end_to_end"] = model.inference_module()
    return {k: v.eval() for k, v in variants.items()}


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


def _onnxruntime_calls(
    modules: dict[str, nn.Module], rgb: torch.Tensor, thermal: torch.Tensor, threads: int
) -> dict[str, Callable[[], object]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    calls = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, module in tqdm(modules.items(), desc="onnx export", leave=False):
            path = Path(tmp) / f"{name}.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module,
                    (rgb, thermal),
                    str(path),
                    dynamo=True,
                    verbose=False,
                    input_names=["rgb", "thermal"],
                )
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            names = {i.name for i in session.get_inputs()}  # an unused input is dropped
            feed = {k: v.numpy() for k, v in (("rgb", rgb), ("thermal", thermal)) if k in names}
            calls[name] = lambda s=session, f=feed: s.run(None, f)
    return calls


def _ratios(med: dict[str, float]) -> dict[str, float]:
    return {
        "ivtuning/rgb_backbone": med["ivtuning"] / med["rgb_backbone"],
        "ivtuning/dual_backbone": med["ivtuning"] / med["dual_backbone"],
        "end_to_end ivtuning/rgb_only": med["ivtuning_end_to_end"] / med["rgb_only_end_to_end"],
        "end_to_end ivtuning/dual_backbone": med["ivtuning_end_to_end"]
        / med["dual_backbone_end_to_end"],
    }


def bench_preset(name: str, backends: list[str], warmup: int, runs: int, threads: int) -> dict:
    from ivtuning_ros.model import load_model_config
    from ivtuning_ros.model.stats import count_flops, example_pair

    cfg = load_model_config(name)
    meta_rgb, meta_thermal = example_pair(cfg, "meta")
    flops = {
        k: count_flops(lambda m=m: m(meta_rgb, meta_thermal))
        for k, m in _variants(cfg, meta=True).items()
    }
    rgb, thermal = example_pair(cfg)
    modules = _variants(cfg, meta=False)
    calls: dict[str, Callable[[], object]] = {}
    if "torch" in backends:
        calls |= {f"torch/{k}": (lambda m=m: m(rgb, thermal)) for k, m in modules.items()}
    if "onnxruntime" in backends:
        ort_calls = _onnxruntime_calls(modules, rgb, thermal, threads)
        calls |= {f"onnxruntime/{k}": f for k, f in ort_calls.items()}
    with torch.inference_mode():
        times = interleaved_times(calls, warmup, runs, name)
    latency: dict[str, dict] = {b: {} for b in backends}
    for key, samples in times.items():
        backend, variant = key.split("/", 1)
        latency[backend][variant] = percentiles_ms(samples)
    ratios = {b: _ratios({k: v["p50_ms"] for k, v in latency[b].items()}) for b in backends}
    ratios["flops"] = {
        "ivtuning/rgb_backbone": flops["ivtuning"] / flops["rgb_backbone"],
        "ivtuning/dual_backbone": flops["ivtuning"] / flops["dual_backbone"],
    }
    return {
        "preset": name,
        "backbone": cfg.backbone,
        "weights": cfg.weights,
        "input_size": list(cfg.input_size),
        "latency_ms": latency,
        "flops": flops,
        "ratios": ratios,
        "targets": {
            b: {k: {"target": t, "met": ratios[b][k] <= t} for k, t in TARGETS.items()}
            for b in backends
        },
    }


def print_preset(r: dict) -> None:
    h, w = r["input_size"]
    print(f"\n{r['preset']}: {r['backbone']} ({r['weights']}) at {h}x{w}, batch 1, CPU")
    backends = list(r["latency_ms"])
    head = "".join(f" {b[:11] + ' p50':>16s} {'p95':>7s}" for b in backends)
    print(f"  {'variant':26s}{head} {'GFLOPs':>8s}")
    for k in r["flops"]:
        cells = "".join(
            f" {r['latency_ms'][b][k]['p50_ms']:16.2f} {r['latency_ms'][b][k]['p95_ms']:7.2f}"
            for b in backends
        )
        print(f"  {k:26s}{cells} {r['flops'][k] / 1e9:8.3f}")
    for kind, ratios in r["ratios"].items():
        for k, v in ratios.items():
            target = TARGETS.get(k) if kind != "flops" else None
            note = f"  (target <= {target}: {'met' if v <= target else 'MISSED'})" if target else ""
            print(f"  {kind:12s} {k:36s} {v:6.3f}{note}")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    results = [
        bench_preset(name, args.backends, args.warmup, args.runs, args.threads)
        for name in args.presets
    ]
    for r in results:
        print_preset(r)
    report = {
        "machine": machine_info(),
        "runs": args.runs,
        "threads": args.threads or torch.get_num_threads(),
        "presets": results,
    }
    write_json(args.json, report)
    return 0
