"""`ivtuning bench registration`: how well `ivtuning calibrate` recovers a rig's mapping.

Real registered pairs (MSRS test blocks) play a rig whose thermal camera is misaligned by
a known random homography H per trial: a shift of up to 20 px, a scale of 0.9-1.1, a
turn of up to 3 degrees and up to 8 px of perspective at each corner (640x480). The
calibration (natural scenes, `--frames` pairs drawn over the blocks) should recover
H: the error is the mean distance between where the estimate and the truth put the
thermal image's corners. Two truths are reported: H itself (against the data set's own
registration) and H after the calibration's estimate on the unwarped pairs (the data
set's own residual offset, which the method sees too, taken out).

What the remaining misalignment costs: the default model's mAP50 on the test blocks
with the thermal images as registered, misaligned by H and uncorrected (a plain resize,
what the node does without a calibration), and corrected by the estimate.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ivtuning_ros.bench.common import machine_info, write_json

TARGETS = {"median_px": 2.0, "p95_px": 5.0}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "registration", help="calibrate: corner error on known warps of real pairs, mAP cost"
    )
    p.add_argument("--real-data", default=None, help="MSRS folder (default: IVTUNING_REAL_DATA)")
    p.add_argument("--trials", type=int, default=20, help="random rigs (homographies)")
    p.add_argument("--frames", type=int, default=20, help="pairs per calibration")
    p.add_argument("--model", choices=("homography", "affine"), default="homography")
    p.add_argument(
        "--map-trials", type=int, default=3, help="trials whose mAP50 cost is measured (0: none)"
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="model for the mAP50 cost (default: models/default.safetensors)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    p.set_defaults(func=run)


def random_rig(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A misaligned thermal camera: 3x3 from its pixels to the registered thermal grid."""
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    zoom, turn = rng.uniform(0.9, 1.1), np.deg2rad(rng.uniform(-3, 3))
    rot = zoom * np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    centre = np.array([w / 2, h / 2])
    dst = (src - centre) @ rot.T + centre + rng.uniform(-20, 20, 2) + rng.uniform(-8, 8, (4, 2))
    return cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32)).astype(
        np.float64
    )


def misaligned(thermal: np.ndarray, rig: np.ndarray) -> np.ndarray:
    """What the misaligned camera sees: raw(x) = registered(rig @ x)."""
    h, w = thermal.shape[:2]
    return cv2.warpPerspective(
        thermal,
        rig,
        (w, h),
        flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def calibration_trial(warped: list, rig: np.ndarray, own: np.ndarray, th_hw, model: str) -> dict:
    """Calibrate one misaligned rig; its corner errors against the data set's
    registration and against calibrate's own view of it (or why it failed)."""
    from ivtuning_ros.registration import CalibrationError, calibrate, corner_error

    start = time.perf_counter()
    row = {"rig": rig.tolist(), "misalignment_px": corner_error(np.eye(3), rig, th_hw)}
    try:
        cal = calibrate(warped, model=model)
        row.update(
            estimate=cal.matrix.tolist(),
            error_vs_data_px=corner_error(cal.matrix, rig, th_hw),
            error_vs_own_px=corner_error(cal.matrix, own @ rig, th_hw),
            frames_used=cal.frames_used,
            spread_px=cal.spread_px,
        )
    except CalibrationError as err:
        row["failed"] = str(err)
    row["seconds"] = time.perf_counter() - start
    return row


def summarise(trials: list[dict]) -> dict:
    """Failures, time per calibration, and median / p95 / max of each corner error."""
    ok = [t for t in trials if "failed" not in t]
    summary = {
        "trials": len(trials),
        "failed": len(trials) - len(ok),
        "seconds_per_calibration": float(np.median([t["seconds"] for t in trials])),
    }
    for key in ("error_vs_data_px", "error_vs_own_px", "misalignment_px"):
        values = [t[key] for t in (ok if key != "misalignment_px" else trials)]
        if values:
            summary[key] = {
                "median": float(np.median(values)),
                "p95": float(np.percentile(values, 95)),
                "max": float(np.max(values)),
            }
    return summary


def run(args: argparse.Namespace) -> int:
    from ivtuning_ros.data.dataset import open_dataset
    from ivtuning_ros.data.real import missing_reason, real_data_root
    from ivtuning_ros.data.splits import BlockSplit, block_part
    from ivtuning_ros.evaluation.evaluate import spread_indices
    from ivtuning_ros.registration import calibrate, corner_error

    problem = missing_reason(args.real_data)
    if problem:
        print(f"bench registration: {problem}")
        return 1
    test = block_part(
        open_dataset(real_data_root(args.real_data), "msrs", "train+test"), BlockSplit(), "test"
    )
    pairs = [(s.rgb, s.thermal) for s in tqdm(test, desc="reading test blocks", unit="pair")]
    th_hw = pairs[0][1].shape[:2]
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    own = calibrate(
        [pairs[i] for i in spread_indices(len(pairs), 2 * args.frames)], model=args.model
    ).matrix
    print(
        f"the data set's own registration, as calibrate sees it: corners "
        f"{corner_error(own, np.eye(3), th_hw):.2f} px from identity"
    )
    trials = []
    for k in tqdm(range(args.trials), desc="bench registration", unit="rig"):
        rig = random_rig(rng, th_hw[1], th_hw[0])
        picks = sorted(rng.choice(len(pairs), min(args.frames, len(pairs)), replace=False))
        warped = [(pairs[i][0], misaligned(pairs[i][1], rig)) for i in picks]
        row = calibration_trial(warped, rig, own, th_hw, args.model)
        row["trial"] = k
        trials.append(row)
    ok = [t for t in trials if "failed" not in t]
    summary = summarise(trials)
    print(f"{'corner error [px]':<40} {'median':>7} {'p95':>7} {'max':>7}")
    for key, label in (
        ("misalignment_px", "misalignment before calibration"),
        ("error_vs_data_px", "after, vs the data set's registration"),
        ("error_vs_own_px", "after, its own offset taken out"),
    ):
        if key in summary:
            s = summary[key]
            print(f"{label:<40} {s['median']:>7.2f} {s['p95']:>7.2f} {s['max']:>7.2f}")
    print(
        f"targets: median <= {TARGETS['median_px']}, p95 <= {TARGETS['p95_px']}; "
        f"{summary['failed']} of {len(trials)} calibrations failed"
    )
    report = {
        "command": "ivtuning bench registration",
        "args": {k: str(v) for k, v in vars(args).items() if k != "func"},
        "summary": summary,
        "targets": TARGETS,
        "own_registration": own.tolist(),
        "trials": trials,
        "elapsed_s": time.perf_counter() - t0,
        "machine": machine_info(),
    }
    if args.map_trials > 0 and ok:
        report["map50_cost"] = map_cost(args, test, ok[: args.map_trials])
    if args.json:
        write_json(args.json, report)
    return 0


def map_cost(args: argparse.Namespace, test, trials: list[dict]) -> list[dict]:
    """mAP50 as registered, misaligned (uncorrected) and corrected, per trial."""
    from ivtuning_ros.data.thermal_mapping import ThermalMapped
    from ivtuning_ros.engine.config import EngineConfig
    from ivtuning_ros.engine.engine import load_engine
    from ivtuning_ros.engine.predictor import Predictor
    from ivtuning_ros.evaluation.evaluate import evaluate_predictor
    from ivtuning_ros.geometry import ThermalGeometry
    from ivtuning_ros.paths import models_dir
    from ivtuning_ros.postprocess import AP_SCORE_THRESHOLD

    checkpoint = args.checkpoint or models_dir() / "default.safetensors"
    rows = []
    with load_engine(checkpoint, EngineConfig(backend="onnxruntime", warmup_runs=1)) as engine:
        predictor = Predictor(engine, score_threshold=AP_SCORE_THRESHOLD)

        def map50(samples) -> float:
            return float(evaluate_predictor(predictor, samples, progress=False)["metrics"]["map50"])

        registered = map50(test)
        for t in tqdm(trials, desc="mAP50 cost", unit="rig"):
            rig, est = np.asarray(t["rig"]), np.asarray(t["estimate"])
            # one warp of the registered image each: the raw image plain-resized
            # (rig^-1), or the raw image mapped by the estimate (est @ rig^-1)
            as_is = ThermalGeometry(homography=tuple(np.linalg.inv(rig).ravel()))
            fixed = ThermalGeometry(homography=tuple((est @ np.linalg.inv(rig)).ravel()))
            rows.append(
                {
                    "trial": t["trial"],
                    "registered": registered,
                    "misaligned": map50(ThermalMapped(test, as_is)),
                    "calibrated": map50(ThermalMapped(test, fixed)),
                    "error_vs_data_px": t["error_vs_data_px"],
                }
            )
            r = rows[-1]
            print(
                f"  rig {t['trial']}: mAP50 registered {r['registered']:.3f}, misaligned "
                f"{r['misaligned']:.3f}, calibrated {r['calibrated']:.3f}"
            )
    return rows
