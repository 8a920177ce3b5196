"""`ivtuning eval`: score a checkpoint on a labelled data set through the node's path."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from ivtuning_ros.data.dataset import FORMATS
    from ivtuning_ros.postprocess import AP_SCORE_THRESHOLD
    from ivtuning_ros.tools.argtypes import add_engine_arguments
    from ivtuning_ros.types import CAMERAS

    p = subparsers.add_parser(
        "eval",
        help="COCO mAP / mIoU / SOD metrics of a checkpoint on a data set, with overlays",
        description="Predict every pair with the engine + Predictor the node uses and score "
        "the results in original image pixels: detection COCO mAP and mAP50 (pycocotools), "
        "segmentation per-class IoU and mIoU, saliency S-measure, E-measure, weighted F and "
        "MAE (pysodmetrics).",
    )
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="data set folder")
    p.add_argument("--format", default="auto", help=f"auto or one of {', '.join(sorted(FORMATS))}")
    p.add_argument("--split", default=None, help="split name inside the folder (e.g. test)")
    p.add_argument(
        "--blocks",
        choices=("train", "val", "test"),
        default=None,
        help="score this part of the data set's block split (data/splits.py, the default "
        "BlockSplit a training config's block_split uses), e.g. the real test blocks",
    )
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    p.add_argument("--overlays", type=int, default=0, help="overlay PNGs for N spread frames")
    p.add_argument(
        "--overlay-dir", type=Path, default=None, help="default: overlays/ beside --json"
    )
    add_engine_arguments(p, backend_default="torch")
    p.add_argument(
        "--score-threshold",
        type=float,
        default=AP_SCORE_THRESHOLD,
        help="detection score cut (low: AP integrates over scores)",
    )
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N pairs")
    p.add_argument("--skip-bad", action="store_true", help="count and skip unreadable pairs")
    p.add_argument(
        "--missing",
        choices=CAMERAS,
        default=None,
        help="withhold this camera from every pair (neutral fill, as the node's degraded "
        "mode): how much a camera failure costs",
    )
    p.add_argument(
        "--thermal-geometry",
        type=Path,
        default=None,
        help="node parameters YAML whose thermal_crop / thermal_affine / thermal_homography "
        "map the thermal images onto the RGB grid first (`ivtuning calibrate` writes one)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ivtuning_ros.data.dataset import open_dataset
    from ivtuning_ros.engine.config import EngineConfig
    from ivtuning_ros.engine.engine import load_engine
    from ivtuning_ros.engine.predictor import Predictor
    from ivtuning_ros.evaluation.evaluate import evaluate_predictor, format_table
    from ivtuning_ros.measure import write_json

    samples = open_dataset(args.data, args.format, split=args.split, skip_bad=args.skip_bad)
    if args.blocks:
        from ivtuning_ros.data.splits import BlockSplit, block_part

        samples = block_part(samples, BlockSplit(), args.blocks)
    if args.limit:
        samples = samples.subset(range(min(args.limit, len(samples))))
    if args.thermal_geometry is not None:
        from ivtuning_ros.data.thermal_mapping import ThermalMapped
        from ivtuning_ros.geometry import ThermalGeometry

        samples = ThermalMapped(samples, ThermalGeometry.from_file(args.thermal_geometry))
    overlay_dir = args.overlay_dir
    if args.overlays and overlay_dir is None:
        overlay_dir = (args.json.parent if args.json else Path(".")) / "overlays"
    engine = load_engine(
        args.checkpoint,
        EngineConfig(
            backend=args.backend, precision=args.precision, calibration_dir=args.calibration_dir
        ),
    )
    with engine:
        report = evaluate_predictor(
            Predictor(engine, score_threshold=args.score_threshold),
            samples,
            overlays=args.overlays,
            overlay_dir=overlay_dir,
            progress=not args.quiet,
            missing=args.missing,
        )
    report.update(
        checkpoint=str(args.checkpoint),
        data=str(args.data),
        split=args.split,
        blocks=args.blocks,
        skipped=getattr(samples, "num_skipped", 0),
    )
    print(format_table(report))
    if args.json:
        write_json(args.json, report)
    elif not args.quiet:
        print(json.dumps(report["metrics"], indent=1))
    return 0
