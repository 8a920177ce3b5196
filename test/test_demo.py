"""`ivtuning demo` (what `make demo` runs), end to end on a short recording: the shipped
model over real DDS on the bag's /clock, its products, and a safe re-run into OUT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivtuning_ros.replay.demo import run_demo


def test_demo_end_to_end_and_rerun(tmp_path: Path) -> None:
    out = tmp_path / "demo_out"
    report = run_demo(out, seconds=2.0, progress=False)
    assert report["input"]["error"] is None
    counts = report["counts"]
    assert counts["matched"] >= 10, counts  # ~20 RGB frames, ~17 thermal in 2 s
    # On the bag's clock the node's own latency is its processing time plus the drivers'
    # stamp-to-send delay, not the months since the synthetic recording's stamps.
    node_latency = report["node_latency"]
    assert 0 < node_latency["p50_ms"] <= node_latency["p95_ms"] < 2000, node_latency
    assert "node's latency" in report["table"]
    for product in ("report.json", "latency_over_time.png", "overlay_montage.png", "bag"):
        assert (out / product).exists(), product
    assert any((out / "overlays").iterdir())
    assert json.loads((out / "report.json").read_text())["counts"] == counts

    (out / "overlays" / "stale.jpg").write_bytes(b"")  # inside a product: removed
    rerun = run_demo(out, seconds=1.0, progress=False)
    assert rerun["input"]["error"] is None
    assert not (out / "overlays" / "stale.jpg").exists()

    (out / "notes.txt").write_text("mine")  # not the demo's: never deleted
    with pytest.raises(FileExistsError, match=r"notes\.txt.*another --out"):
        run_demo(out, seconds=1.0, progress=False)
    assert (out / "notes.txt").read_text() == "mine"
