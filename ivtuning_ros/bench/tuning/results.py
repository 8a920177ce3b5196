"""`ivtuning bench tuning` results: seeds joined, the paper's claims checked, tables,
and reports of separate runs merged."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ivtuning_ros.bench.tuning.recipe import FUSION_MODES, MODES, RECOMPUTE, SPLIT_LABELS, VARIANTS
from ivtuning_ros.types import CAMERAS

# per-run figures that a mode's row reports as their mean over its seeds
AVERAGED = (
    "val_map50",
    "map50_seen",
    "map50_unseen",
    "map_seen",
    "map_unseen",
    "peak_rss_mib",
    "rss_before_training_mib",
    "peak_training_increase_mib",
    "step_ms_median",
    "step_ms_mean",
    "train_s",
)

# a fusion mode's mAP50 with one camera missing at test time (reports before 2026-11-30
# lack them: a row has a mean only where every one of its runs has the figure)
DEGRADED = tuple(
    f"map50_{split}_{camera}_missing" for split in ("seen", "unseen") for camera in CAMERAS
)


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
        out["peak training memory ivtuning <= 0.6x full"] = {
            "value": round(mem, 3),
            "met": mem <= 0.6,
        }
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
    head = (
        f"{'mode':<21}{'trainable':>11}{'lr':>8}{'peak RSS':>10}{'train +':>9}"
        f"{'ms/step':>9}{'mAP50 ' + seen:>12}{unseen:>8}{'mAP ' + seen:>10}"
        f"{'val':>7}"
    )
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
        lines += [
            "",
            f"one camera missing at test time (the node's degraded mode), mAP50 {seen} / {unseen}:",
        ]
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
