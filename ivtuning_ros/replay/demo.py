"""`ivtuning demo`: the whole product in one command, on a synthetic night/fog recording.

make a bag -> start the node with the shipped default model -> replay the bag through
it over DDS -> accuracy + latency table, report, plots and overlay frames in OUT/.
The bag's time goes out on /clock and the node runs on it (use_sim_time), as with
`ros2 bag play --clock`, so the node's own /diagnostics latency is reported too.
The node gets the shipped config/ivtuning.yaml plus the two settings a user would make
for this camera pair: the thermal stream is radiometric mono16 (so thermal_norm
y16_percentile), and the thermal driver stamps ~26 ms late (thermal_stamp_offset).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from ivtuning_ros.paths import config_dir
from ivtuning_ros.replay.options import CLOCK_HZ, ReplayOptions
from ivtuning_ros.replay.session import run_replay
from ivtuning_ros.replay.synthetic_bag import RGB_TIMING, THERMAL_TIMING, make_bag

# What a previous demo leaves in OUT (removed before a new run; nothing else is touched).
_PRODUCTS = (
    "bag",
    "output_bag",
    "overlays",
    "report.json",
    "latency_over_time.png",
    "latency_hist.png",
    "overlay_montage.png",
)


def demo_overrides() -> dict[str, Any]:
    return {
        "thermal_norm": "y16_percentile",
        "thermal_stamp_offset": round(RGB_TIMING.stamp_offset_s - THERMAL_TIMING.stamp_offset_s, 4),
    }


def _clear_previous(out: Path) -> None:
    if not out.exists():
        return
    unknown = sorted(p.name for p in out.iterdir() if p.name not in _PRODUCTS)
    if unknown:
        raise FileExistsError(
            f"{out} holds files the demo did not write ({', '.join(unknown[:5])}): "
            "choose another --out"
        )
    for name in _PRODUCTS:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def run_demo(
    out: Path,
    seconds: float = 20.0,
    condition: str = "light_fog",
    seed: int = 7,
    storage: str = "mcap",
    checkpoint: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    from ivtuning_ros.ros.params import SPECS
    from ivtuning_ros.ros.pipeline import resolve_checkpoint

    t0 = time.monotonic()
    resolve_checkpoint(checkpoint or SPECS["checkpoint"].default)  # fail before rendering
    out = Path(out)
    _clear_previous(out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[demo 1/3] rendering {seconds:g} s of synthetic {condition} RGB-T into {out / 'bag'}")
    bag = make_bag(
        out / "bag",
        storage=storage,
        condition=condition,
        seconds=seconds,
        seed=seed,
        progress=progress,
    )
    print(
        f"           {bag.rgb_frames} RGB frames (bgr8, 10 Hz) + {bag.thermal_frames} thermal "
        "frames (mono16, 8.7 Hz) with ground truth"
    )
    overrides = demo_overrides()
    if checkpoint is not None:
        overrides["checkpoint"] = checkpoint
    print(
        "[demo 2/3] starting ivtuning_node (shipped model; first run exports the engine) and "
        "replaying over DDS with the bag's time on /clock; node settings: "
        f"config/ivtuning.yaml + {overrides}"
    )
    report = run_replay(
        ReplayOptions(
            bag=bag.path,
            out=out,
            params=config_dir() / "ivtuning.yaml",
            overrides=overrides,
            clock_hz=CLOCK_HZ,
            progress=progress,
        )
    )
    print(f"[demo 3/3] done in {time.monotonic() - t0:.0f} s")
    print(report["table"])
    print(
        f"report {out / 'report.json'}, plots {out}/latency_*.png, overlays {out}/overlays/ "
        f"and {out / 'overlay_montage.png'}"
    )
    return report
