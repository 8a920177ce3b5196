"""`ivtuning bench engine`: latency of every backend available here, side by side.

The default model at the node's input size is saved as a checkpoint and loaded through
`load_engine` exactly as the node does (fresh cache, so build times are reported too).
Backends run in interleaved rounds so a noisy neighbour on a shared machine hurts them
alike. The lower bound is the model's FLOPs (torch.utils.flop_counter) over this
machine's fp32 matmul throughput measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ivtuning_ros.bench.common import (
    add_int8_calibration_argument,
    int8_calibration,
    machine_info,
    percentiles_ms,
    write_json,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "engine", help="latency of each inference backend vs the FLOP lower bound"
    )
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    p.add_argument("--preset", default="default", help="model preset (config/models)")
    p.add_argument("--runs", type=int, default=100, help="timed runs per backend")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs per backend")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = per core)")
    p.add_argument(
        "--compile", action="store_true", help="also time the torch.compile'd torch backend"
    )
    p.add_argument("--ort-profile", action="store_true", help="ONNX Runtime time per operator type")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="a trained checkpoint (e.g. models/default.safetensors) instead of the preset's "
        "untrained weights: needed for the accuracy column",
    )
    p.add_argument(
        "--accuracy",
        action="store_true",
        help="also score every CPU precision (mAP50) on the real MSRS test blocks",
    )
    add_int8_calibration_argument(p)
    p.set_defaults(func=run)


def matmul_flops_per_s(n: int = 1024, runs: int = 30) -> float:
    """Best-of-runs fp32 throughput of an n x n matmul: what this machine can do at best.

    Many short runs (about 20 ms each on one core) rather than a few long ones, so that
    on a shared machine at least one of them runs undisturbed."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(runs + 2):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def ort_op_profile(model_path: Path, input_hw: tuple[int, int], runs: int, threads: int) -> dict:
    """Kernel time per ONNX operator type (ms per run, share), from ORT's own profiler."""
    import onnxruntime as ort

    from ivtuning_ros.engine.backends.onnxruntime import session_options

    so = session_options(threads)
    so.enable_profiling = True
    so.profile_file_prefix = str(model_path.parent / "ort_profile")
    session = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    feed = {"rgb": np.full((1, 3, *input_hw), 0.5, np.float32)}
    feed["thermal"] = np.full((1, 1, *input_hw), 0.5, np.float32)
    for _ in range(runs):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    per_op: dict[str, float] = {}
    count: dict[str, int] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"]["op_name"]
            per_op[op] = per_op.get(op, 0.0) + e["dur"] / 1e3 / runs
            count[op] = count.get(op, 0) + 1
    total = sum(per_op.values())
    ranked = sorted(per_op.items(), key=lambda kv: -kv[1])
    return {
        op: {"ms_per_run": ms, "share": ms / total, "nodes": count[op] // runs} for op, ms in ranked
    }


def model_flops(module: torch.nn.Module, input_hw: tuple[int, int]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    from ivtuning_ros.engine.export import example_inputs

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(*example_inputs(input_hw, 1))
    return int(counter.get_total_flops())


def _save_default_checkpoint(preset: str, folder: Path) -> tuple[Path, torch.nn.Module]:
    from ivtuning_ros.model import build_model, load_model_config
    from ivtuning_ros.model.checkpoint import save_checkpoint

    model = build_model(load_model_config(preset)).eval()
    path = folder / f"{preset}.safetensors"
    save_checkpoint(path, model, {"note": "untrained weights, for benchmarking"})
    return path, model.inference_module().eval()


def accuracy(engines: dict, real_data: str | None) -> dict[str, dict]:
    """mAP50 of each CPU engine on the real MSRS test blocks, through the node's Predictor."""
    from ivtuning_ros.data.dataset import open_dataset
    from ivtuning_ros.data.real import missing_reason, real_data_root
    from ivtuning_ros.data.splits import BlockSplit, block_part
    from ivtuning_ros.engine.predictor import Predictor
    from ivtuning_ros.evaluation.evaluate import evaluate_predictor
    from ivtuning_ros.postprocess import AP_SCORE_THRESHOLD

    problem = missing_reason(real_data)
    if problem:
        raise FileNotFoundError(f"--accuracy: {problem}")
    test = block_part(
        open_dataset(real_data_root(real_data), "msrs", "train+test"), BlockSplit(), "test"
    )
    out = {}
    for label, engine in engines.items():
        if label.startswith(("onnxruntime", "openvino")):
            report = evaluate_predictor(
                Predictor(engine, score_threshold=AP_SCORE_THRESHOLD), test, progress=False
            )
            out[label] = {
                "map50": report["metrics"]["map50"],
                "map": report["metrics"]["map"],
                "images": report["images"],
            }
    return out


def available_backends(compile_too: bool, calibration: Path | None) -> list[tuple[str, dict]]:
    """(label, EngineConfig overrides) of each backend that can run on this machine."""
    from ivtuning_ros.engine.backends import tensorrt

    out = [("torch eager", {"backend": "torch"})]
    if compile_too:
        out.append(("torch compile", {"backend": "torch", "torch_compile": True}))
    out.append(("onnxruntime", {"backend": "onnxruntime"}))
    if calibration is not None:
        out.append(
            (
                "onnxruntime int8",
                {"backend": "onnxruntime", "precision": "int8", "calibration_dir": calibration},
            )
        )
    try:
        from ivtuning_ros.engine.backends import openvino

        out.append(("openvino", {"backend": "openvino"}))
        if calibration is not None:
            out.append(
                (
                    "openvino int8",
                    {"backend": "openvino", "precision": "int8", "calibration_dir": calibration},
                )
            )
        if openvino.has_bf16():
            out.append(("openvino bf16", {"backend": "openvino", "precision": "bf16"}))
        else:
            print("bench engine: openvino bf16 skipped: this CPU has no bf16 arithmetic")
    except ImportError as err:
        print(f"bench engine: openvino skipped: {err}")
    ok, why = tensorrt.available()
    if ok:
        out.append(("tensorrt fp32", {"backend": "tensorrt"}))
        out.append(("tensorrt fp16", {"backend": "tensorrt", "precision": "fp16"}))
    else:
        print(f"bench engine: tensorrt skipped: {why}")
    if torch.cuda.is_available():
        out.append(("torch eager fp16", {"backend": "torch", "precision": "fp16"}))
    return out


IDLE_BETWEEN_ENGINES_S = 0.3  # > torch workers' spin (GOMP_SPINCOUNT, ivtuning_ros/__init__.py)


def time_interleaved(engines: dict, input_hw: tuple[int, int], runs: int) -> dict[str, list]:
    """Seconds per run of each engine on one fixed random pair, in 10 interleaved rounds
    (a slow spell of the machine then touches every backend alike), with a pause after
    each engine's turn: its worker threads (torch's OpenMP ones spin for ~0.1 s) go idle
    before the next engine is timed."""
    rng = np.random.default_rng(0)
    rgb = rng.random((1, 3, *input_hw), dtype=np.float32)
    thermal = rng.random((1, 1, *input_hw), dtype=np.float32)
    samples: dict[str, list[float]] = {label: [] for label in engines}
    rounds, per_round = 10, max(1, runs // 10)
    for _ in tqdm(range(rounds), desc="bench engine (interleaved rounds)"):
        for label, engine in engines.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                engine.run(rgb, thermal)
                samples[label].append(time.perf_counter() - t0)
            time.sleep(IDLE_BETWEEN_ENGINES_S)
    return samples


def _timing_row(times: list[float], load_s: float, flops: float, peak: float) -> dict:
    """Percentiles of one backend, with the share of the matmul rate its p50 reaches."""
    stats = percentiles_ms(times)
    achieved = flops / (stats["p50_ms"] / 1e3)
    stats.update(load_s=load_s, achieved_gflops=achieved / 1e9, fraction_of_matmul=achieved / peak)
    return stats


def print_report(report: dict, preset: str) -> None:
    """The table and the side-by-side ratios, as report.json holds them."""
    bound, input_hw, results = report["lower_bound_ms"], report["input_hw"], report["backends"]
    flops, peak = report["model_gflops"] * 1e9, report["matmul_gflops"] * 1e9
    print(
        f"\nload average before/after: {report['load_average_before'][0]:.1f} / "
        f"{report['load_average_after'][0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"\nmodel {preset} at {input_hw[0]}x{input_hw[1]}: {flops / 1e9:.2f} GFLOP/image; "
        f"matmul {peak / 1e9:.1f} GFLOP/s -> lower bound {bound:.2f} ms"
    )
    print(
        f"{'backend':<18}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'GFLOP/s':>10}{'of mm':>8}"
        f"{'load s':>8}"
    )
    for label, s in results.items():
        print(
            f"{label:<18}{s['p50_ms']:>9.2f}{s['p95_ms']:>9.2f}{s['p99_ms']:>9.2f}"
            f"{s['achieved_gflops']:>10.1f}{s['fraction_of_matmul']:>8.1%}{s['load_s']:>8.1f}"
        )
    if "onnxruntime_speedup_vs_eager_p50" in report:
        print(
            f"onnxruntime vs torch eager at p50: {report['onnxruntime_speedup_vs_eager_p50']:.2f}x"
        )
    for label, speedup in report.get("speedup_vs_onnxruntime_fp32_p50", {}).items():
        print(f"{label} vs onnxruntime fp32 at p50: {speedup:.2f}x")
    for label, acc in report.get("accuracy", {}).items():
        print(f"mAP50 on the real test blocks, {label}: {acc['map50']:.4f} ({acc['images']} pairs)")
    for op, p in list(report.get("ort_profile", {}).items())[:10]:
        print(f"  ort {op:<24}{p['ms_per_run']:>8.2f} ms {p['share']:>7.1%}  x{p['nodes']}")


def run(args: argparse.Namespace) -> int:
    from ivtuning_ros.engine.config import EngineConfig
    from ivtuning_ros.engine.engine import load_engine

    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict = {"machine": machine_info(), "preset": args.preset, "runs": args.runs}
    # Other processes skew CPU timings: record how busy the machine was.
    report["load_average_before"] = os.getloadavg()
    calibration = int8_calibration(args)
    if calibration is None:
        print("bench engine: int8 skipped: no --int8-calibration and no real data")
    with tempfile.TemporaryDirectory(prefix="ivtuning-bench-") as tmp:
        if args.checkpoint is not None:
            from ivtuning_ros.model.checkpoint import load_checkpoint

            ckpt = args.checkpoint
            module = load_checkpoint(ckpt)[0].inference_module().eval()
        else:
            ckpt, module = _save_default_checkpoint(args.preset, Path(tmp))
        report["checkpoint"] = str(args.checkpoint or f"untrained {args.preset}")
        engines = {}
        builds = {}
        for label, overrides in available_backends(args.compile, calibration):
            cfg = EngineConfig(
                cache_dir=Path(tmp) / "cache",
                warmup_runs=args.warmup,
                num_threads=args.threads,
                **overrides,
            )
            t0 = time.perf_counter()
            engines[label] = load_engine(ckpt, cfg, log=lambda line: print(f"  {line}"))
            builds[label] = time.perf_counter() - t0
        input_hw = next(iter(engines.values())).input_hw
        flops = model_flops(module, input_hw)
        del module
        peak_before = matmul_flops_per_s()

        samples = time_interleaved(engines, input_hw, args.runs)
        if args.accuracy:
            report["accuracy"] = accuracy(engines, args.real_data)
        for engine in engines.values():
            engine.close()
        peak = max(peak_before, matmul_flops_per_s())  # before and after: the less disturbed
        if args.ort_profile and "onnxruntime" in engines:
            report["ort_profile"] = ort_op_profile(
                engines["onnxruntime"].artifact, input_hw, 20, args.threads
            )

    results = {
        label: _timing_row(times, builds[label], flops, peak) for label, times in samples.items()
    }
    report.update(
        load_average_after=os.getloadavg(),
        input_hw=list(input_hw),
        model_gflops=flops / 1e9,
        matmul_gflops=peak / 1e9,
        lower_bound_ms=flops / peak * 1e3,
        backends=results,
    )
    if "onnxruntime" in results:
        eager = results["torch eager"]["p50_ms"]
        report["onnxruntime_speedup_vs_eager_p50"] = eager / results["onnxruntime"]["p50_ms"]
    if "onnxruntime" in results:  # every CPU path against ONNX Runtime fp32, side by side
        fp32 = results["onnxruntime"]["p50_ms"]
        report["speedup_vs_onnxruntime_fp32_p50"] = {
            label: fp32 / s["p50_ms"] for label, s in results.items()
            if label.startswith(("onnxruntime ", "openvino"))
        }  # fmt: skip
    if "onnxruntime int8" in results:
        report["int8_speedup_vs_onnxruntime_fp32_p50"] = report["speedup_vs_onnxruntime_fp32_p50"][
            "onnxruntime int8"
        ]

    print_report(report, args.preset)
    write_json(args.json, report)
    return 0
