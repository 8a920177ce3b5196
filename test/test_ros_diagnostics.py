"""/diagnostics tells the truth, over real DDS: "no input" only when nothing arrives,
ERROR naming the reason when input arrives but no result is published, WARN on transport
loss, each level change logged once; middleware counters that cannot stall the node;
checkpoints with non-finite weights refused for every backend."""

from __future__ import annotations

import re
import threading
import time
import uuid
from types import SimpleNamespace

import pytest
from rcl_interfaces.msg import Log
from rclpy.qos import QoSProfile, ReliabilityPolicy

from ivtuning_ros.ros import diagnostics
from ivtuning_ros.ros.probe import pair_messages, probed_node

# the levels as the probe reads them from the message
OK, WARN, ERROR = (
    int.from_bytes(b, "little") for b in (diagnostics.OK, diagnostics.WARN, diagnostics.ERROR)
)


def level(probe) -> int | None:
    return probe.diagnostics().get("level")


@pytest.fixture(scope="module")
def ros(checkpoint):
    overrides = {
        "checkpoint": str(checkpoint),
        "backend": "onnxruntime",
        "cache_dir": str(checkpoint.parent / "engines"),
        "warmup_runs": 1,
        "qos_depth": 5,
        "diagnostics_period": 0.2,
        "stale_after": 1.0,
        "result_timeout": 1.0,
        "sync_timeout": 0.3,
    }
    with probed_node(overrides) as (node, probe):
        logs: list[str] = []
        probe.node.create_subscription(
            Log,
            "/rosout",
            lambda m: logs.append(m.msg) if m.name.endswith("ivtuning_node") else None,
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE),
        )
        assert probe.wait_for_node(20.0), "node subscriptions never matched the probe"
        yield node, probe, logs


def stream_pairs(probe, pair, seconds: float, rate: float = 10.0, bad=()) -> None:
    msgs = pair_messages(*pair)
    for camera in bad:
        msgs[camera].encoding = "yuv422"  # a camera in an encoding the node refuses
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        probe.publish_messages(msgs)
        time.sleep(1.0 / rate)


def test_no_input_is_reported_only_when_nothing_arrives(ros):
    _node, probe, _ = ros
    assert probe.wait(lambda: level(probe) == ERROR, 5.0)
    assert probe.diagnostics()["message"] == "no rgb and no thermal input for over 1 s"


def test_input_without_results_is_an_error_naming_the_reason_logged_once(ros, pair):
    _node, probe, logs = ros
    # both cameras in an encoding the node refuses: frames arrive, every one is dropped
    stream_pairs(probe, pair, 2.5, bad=("rgb", "thermal"))
    diag = probe.diagnostics()
    assert diag["level"] == ERROR, diag["message"]
    assert re.fullmatch(
        r"no results for \d+ s while rgb and thermal input arrives: "
        r"(rgb|thermal)_bad_input x\d+: .*'yuv422'.*",
        diag["message"],
    ), diag["message"]
    errors = [m for m in logs if m.startswith("diagnostics: no results")]
    assert len(errors) == 1, logs  # about 12 diagnostics periods, one log line
    # good pairs again: results flow and the status returns to OK, logged once more
    stream_pairs(probe, pair, 1.5)
    assert probe.wait(lambda: level(probe) == OK, 5.0), probe.diagnostics()["message"]
    assert probe.diagnostics()["message"] == "active: processing"
    after = logs[logs.index(errors[0]) + 1 :]
    assert after.count("diagnostics: active: processing") == 1, "\n".join(after)


def test_results_from_one_camera_while_both_arrive_is_a_warning(ros, pair):
    _node, probe, _ = ros
    stream_pairs(probe, pair, 2.0, bad=("rgb",))  # lone thermal frames still run
    diag = probe.diagnostics()
    assert diag["level"] == WARN, diag["message"]
    assert diag["message"].startswith("results from thermal only: rgb frames are dropped")
    assert "rgb_bad_input x" in diag["message"]
    stream_pairs(probe, pair, 6.0)  # the warning leaves with the 5 s window
    assert level(probe) == OK, probe.diagnostics()["message"]


def test_transport_loss_warns_with_the_fix(ros, pair):
    node, probe, _ = ros
    lost = node._input_events("rgb").message_lost
    stop = threading.Event()

    def middleware_reports_losses() -> None:  # what DDS delivers when large frames drop
        while not stop.is_set():
            lost(SimpleNamespace(total_count=0, total_count_change=3))
            time.sleep(0.1)

    reporter = threading.Thread(target=middleware_reports_losses)
    reporter.start()
    try:
        stream_pairs(probe, pair, 2.0)
        diag = probe.diagnostics()
    finally:
        stop.set()
        reporter.join()
    assert diag["level"] == WARN, diag["message"]
    assert re.match(r"rgb: \d+% of frames lost in transport", diag["message"])
    assert "fastdds_large_images.xml" in diag["message"]
    assert int(diag["count rgb_received"]) > 0


def test_an_overflowed_lost_sample_count_returns_at_once_and_is_clamped(ros):
    node, _, _ = ros
    lost = node._input_events("thermal").message_lost
    before = dict(node.stats.counts)
    t0 = time.perf_counter()
    lost(SimpleNamespace(total_count=2**31 - 1, total_count_change=2**31 - 1))
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.05, f"{elapsed * 1e3:.1f} ms"
    lost(SimpleNamespace(total_count=0, total_count_change=-4))
    lost(SimpleNamespace(total_count=9, total_count_change=7))
    counts = node.stats.counts
    assert counts["thermal_lost_in_transport"] - before.get("thermal_lost_in_transport", 0) == 9
    assert counts["middleware_counter_anomaly"] - before.get("middleware_counter_anomaly", 0) == 2


def test_frames_of_different_rigs_are_fused_counted_and_warned_once(ros, pair):
    node, probe, logs = ros
    msgs = pair_messages(*pair, frame_id="robot1/rgb_camera")
    msgs["thermal"].header.frame_id = "robot2/thermal_camera"
    stamps = []
    for _ in range(4):
        stamps.append(probe.publish_messages(msgs))
        time.sleep(0.15)
    assert probe.wait(lambda: all(probe.result_for(s, 0.0) for s in stamps[-2:]), 10.0)
    fused = probe.result_for(stamps[-1], 0.0)
    assert fused.modalities == fused.MODALITY_BOTH and fused.header.frame_id == "robot1/rgb_camera"
    counts = node.stats.counts
    assert counts["frame_id_mismatch"] >= 3 and counts["rgb_frame_id_changed"] >= 3
    assert "robot2/thermal_camera" in node.stats.reasons["frame_id_mismatch"]
    assert sum(m.startswith("frame_id_mismatch:") for m in logs) == 1


@pytest.fixture
def nan_checkpoint(checkpoint, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(checkpoint), "pt") as f:
        header = f.metadata()
    state = load_file(str(checkpoint))
    name = sorted(state)[3]
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    path = tmp_path / "diverged.safetensors"
    save_file(state, str(path), metadata=header)
    return path, name


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_non_finite_weights_are_refused_naming_file_and_tensor(nan_checkpoint, backend, tmp_path):
    from ivtuning_ros.engine.config import EngineConfig
    from ivtuning_ros.engine.engine import load_engine

    path, name = nan_checkpoint
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=rf"{path.name}: tensor '{name}' holds NaN"):
        load_engine(path, EngineConfig(backend=backend, cache_dir=cache), log=lambda _: None)
    assert not cache.exists()  # a failed load leaves no empty cache folder


def test_node_with_a_diverged_checkpoint_stays_unconfigured_and_says_why(nan_checkpoint):
    path, name = nan_checkpoint
    overrides = {"checkpoint": str(path), "backend": "onnxruntime", "diagnostics_period": 0.2,
                 "cache_dir": str(path.parent / "engines")}  # fmt: skip
    # a namespace of its own: the module's `ros` node, alive beside it, has the same name
    with probed_node(overrides, f"diverged_{uuid.uuid4().hex[:6]}") as (_node, probe):
        assert probe.wait(lambda: level(probe) == ERROR, 10.0)
        message = probe.diagnostics()["message"]
    assert message.startswith("unconfigured: configure failed") and name in message
    assert not (path.parent / "engines").exists()


def test_corrupt_cache_artifact_is_healed_and_warned(tmp_path):
    from ivtuning_ros.engine.cache import CacheKey, EngineCache

    warnings: list[str] = []
    cache = EngineCache(tmp_path, "slot", log=lambda _: None, warn=warnings.append)
    key = CacheKey({"a": "1"})

    def build(tmp):
        tmp.write_bytes(b"engine")
        return {}

    cache.get_or_build(key, "e.bin", build, lambda p: p.read_bytes())
    (tmp_path / "slot" / "e.bin").write_bytes(b"broken")
    result = cache.get_or_build(key, "e.bin", build, lambda p: p.read_bytes())
    assert result.value == b"engine" and result.built
    assert len(warnings) == 1 and "corrupt artifact" in warnings[0]

    def failing(tmp):
        raise RuntimeError("export failed")

    fresh = EngineCache(tmp_path / "new_root", "slot", log=lambda _: None)
    with pytest.raises(RuntimeError, match="export failed"):
        fresh.get_or_build(key, "e.bin", failing, lambda p: p)
    assert not (tmp_path / "new_root").exists()


def test_implausible_changes_count_as_one():
    from ivtuning_ros.ros.diagnostics import MAX_EVENT_CHANGE, plausible_change

    assert plausible_change(5) == 5 and plausible_change(MAX_EVENT_CHANGE) == MAX_EVENT_CHANGE
    assert plausible_change(2**31 - 1) == 1 and plausible_change(-3) == 1
    assert plausible_change(0) == 1
