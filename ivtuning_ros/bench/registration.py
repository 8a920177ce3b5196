"""`ivtuning bench registration`: how well `ivtuning calibrate` recovers a rig's mapping.

Real registered pairs (MSRS test blocks) play a rig whose thermal camera is misaligned by
a known random homography H per trial: a shift of up to 20 px, a scale of 0.9-1.1, a
turn of up to 3 degrees and up to 8 px of perspective at each corner (640x480). The
calibration (natural scenes, `--frames` pairs drawn over the blocks) should recover
H: the error is the mean distance between where the estimate and the truth put the
thermal image's corners. Two truths are reported: H on top of the data set's own
registration, and H on top of what `calibrate` finds on the same pairs before the warp
(the target's figure: recovering the known warp). They differ because MSRS's own
registration is not exact: it leaves pair-to-pair offsets of a few pixels (a zoom of up to
3%), which the bench shows by the distance between RGB and thermal edges (Canny) as
registered and as calibrated.

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


def calibration_trial(pairs: list, rig: np.ndarray, th_hw, model: str) -> dict:
    """Calibrate one rig misaligned by `rig` from these registered pairs; the corner
    errors against the data set's registration and against what calibrate finds on the
    same pairs unwarped (or why it failed)."""
    from ivtuning_ros.registration import CalibrationError, calibrate, corner_error

    row = {"rig": rig.tolist(), "misalignment_px": corner_error(np.eye(3), rig, th_hw)}
    try:
        before = calibrate(pairs, model=model).matrix
        start = time.perf_counter()
        cal = calibrate([(rgb, misaligned(thermal, rig)) for rgb, thermal in pairs], model=model)
        row["seconds"] = time.perf_counter() - start
        row.update(
            estimate=cal.matrix.tolist(),
            error_vs_data_px=corner_error(cal.matrix, rig, th_hw),
            error_recovering_warp_px=corner_error(cal.matrix, before @ rig, th_hw),
            frames_used=cal.frames_used,
            spread_px=cal.spread_px,
        )
    except CalibrationError as err:
        row["failed"] = str(err)
    return row


def edge_distances(rgb: np.ndarray, thermal: np.ndarray, mappings: list[np.ndarray]) -> list[float]:
    """How far the thermal image's edges (Canny), mapped onto the RGB image by each of
    `mappings`, lie from the RGB image's edges: mean pixels, each capped at 8 (edges one
    band lacks count the same whatever the mapping). A measure of alignment independent
    of calibrate's own (ECC on normalised gradients)."""
    from ivtuning_ros.registration import grey01

    def edges(grey: np.ndarray) -> np.ndarray:
        u8 = (cv2.GaussianBlur(grey, (0, 0), 1.2) * 255).astype(np.uint8)
        return cv2.Canny(u8, 40, 100) > 0

    h, w = rgb.shape[:2]
    far = cv2.distanceTransform((~edges(grey01(rgb))).astype(np.uint8), cv2.DIST_L2, 5)
    thermal01 = grey01(thermal)
    ones = np.ones(thermal.shape[:2], np.uint8)
    out = []
    for mapping in mappings:
        m = np.asarray(mapping, np.float64)
        inside = cv2.erode(cv2.warpPerspective(ones, m, (w, h)), np.ones((5, 5))) > 0
        thermal_edges = edges(cv2.warpPerspective(thermal01, m, (w, h))) & inside
        out.append(
            float(np.minimum(far[thermal_edges], 8.0).mean()) if thermal_edges.any() else 8.0
        )
    return out


def registration_check(pairs: list, own: np.ndarray) -> dict:
    """The data set's registration against calibrate's: edge distance per pair, each as
    registered and mapped by `own`."""
    registered, calibrated = np.array([edge_distances(r, t, [np.eye(3), own]) for r, t in pairs]).T
    return {
        "pairs": len(pairs),
        "edge_distance_registered_px": float(np.median(registered)),
        "edge_distance_calibrated_px": float(np.median(calibrated)),
        "pairs_closer_calibrated": float(np.mean(calibrated < registered)),
    }


def summarise(trials: list[dict]) -> dict:
    """Failures, time per calibration, and median / p95 / max of each corner error."""
    ok = [t for t in trials if "failed" not in t]
    summary = {
        "trials": len(trials),
        "failed": len(trials) - len(ok),
    }
    if ok:
        summary["seconds_per_calibration"] = float(np.median([t["seconds"] for t in ok]))
    for key in ("error_recovering_warp_px", "error_vs_data_px", "misalignment_px"):
        values = [t[key] for t in (ok if key != "misalignment_px" else trials)]
        if values:
            summary[key] = {
                "median": float(np.median(values)),
                "p95": float(np.percentile(values, 95)),
                "max": float(np.max(values)),
            }
    return summary


def print_summary(summary: dict, trials: int) -> None:
    print(f"{'corner error [px]':<44} {'median':>7} {'p95':>7} {'max':>7}")
    for key, label in (
        ("misalignment_px", "misalignment before calibration"),
        ("error_recovering_warp_px", "after, vs the same pairs calibrated unwarped"),
        ("error_vs_data_px", "after, vs the data set's registration"),
    ):
        if key in summary:
            s = summary[key]
            print(f"{label:<44} {s['median']:>7.2f} {s['p95']:>7.2f} {s['max']:>7.2f}")
    print(
        f"targets (recovering the warp): median <= {TARGETS['median_px']}, p95 <= "
        f"{TARGETS['p95_px']}; {summary['failed']} of {trials} calibrations failed"
    )


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
    check = registration_check(pairs, own)
    print(
        f"the data set's registration, as calibrate sees it: corners "
        f"{corner_error(own, np.eye(3), th_hw):.2f} px from identity; RGB-thermal edge "
        f"distance {check['edge_distance_registered_px']:.2f} px as registered, "
        f"{check['edge_distance_calibrated_px']:.2f} px calibrated (closer on "
        f"{check['pairs_closer_calibrated']:.0%} of {check['pairs']} pairs)"
    )
    trials = []
    for k in tqdm(range(args.trials), desc="bench registration", unit="rig"):
        rig = random_rig(rng, th_hw[1], th_hw[0])
        picks = sorted(rng.choice(len(pairs), min(args.frames, len(pairs)), replace=False))
        row = calibration_trial([pairs[i] for i in picks], rig, th_hw, args.model)
        row["trial"] = k
        trials.append(row)
    ok = [t for t in trials if "failed" not in t]
    summary = summarise(trials)
    print_summary(summary, len(trials))
    report = {
        "command": "ivtuning bench registration",
        "args": {k: str(v) for k, v in vars(args).items() if k != "func"},
        "summary": summary,
        "targets": TARGETS,
        "own_registration": own.tolist(),
        "registration_check": check,
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
