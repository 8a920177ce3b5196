"""Node parameters (descriptors, ranges, choices, run-time changes), the params file, the
launch file and the rviz layout. The node here is left unconfigured (no model needed)."""

import ast
from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.parameter import Parameter

from ivtuning_ros.ros.node import IVTuningNode
from ivtuning_ros.ros.params import (
    FALLBACK_SCORE_THRESHOLD,
    SPECS,
    default_values,
    node_config,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def make_node(context, **overrides):
    params = [Parameter("auto_activate", value=False)]
    params += [Parameter(k, value=v) for k, v in overrides.items()]
    return IVTuningNode(context=context, parameter_overrides=params)


def test_every_parameter_is_declared_with_a_description(context):
    node = make_node(context)
    try:
        for name, spec in SPECS.items():
            d = node.describe_parameter(name)
            assert d.description.startswith(spec.description[:20]), name
            if spec.range is not None:
                assert d.integer_range or d.floating_point_range, name
        assert node.state_label == "unconfigured"
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("score_threshold", 1.5, "score_threshold"),  # outside the descriptor's range
        ("sync_queue_size", 0, "sync_queue_size"),
        ("on_timeout", "wait", "on_timeout='wait': must be one of degraded_auto, degraded, "),
        ("backend", "tensorflow", "must be one of auto, tensorrt"),
        ("device", "gpu0", "must be auto, cpu, cuda or cuda:N"),
        ("thermal_crop", [0, 0, -5, 10], "thermal_crop"),
        ("thermal_affine", [1.0, 2.0, 0.0, 2.0, 4.0, 0.0], "singular"),
        ("thermal_homography", [1.0, 2.0, 0.0, 2.0, 4.0, 0.0, 0.0, 0.0, 0.0], "singular"),
    ],
)
def test_invalid_values_are_refused_with_the_reason(context, name, value, needle):
    node = make_node(context)
    try:
        before = node.get_parameter(name).value
        (result,) = node.set_parameters([Parameter(name, value=value)])
        assert not result.successful
        assert needle in result.reason or name in result.reason, result.reason
        assert node.get_parameter(name).value == before
    finally:
        node.destroy_node()


def test_percentile_norm_needs_ordered_bounds(context):
    node = make_node(context)
    try:
        (ok,) = node.set_parameters(
            [Parameter("thermal_norm", value="percentile")]
        )  # default low 0, high 255 are not percentiles
        assert not ok.successful and "percentiles must lie in [0, 100]" in ok.reason
        results = node.set_parameters_atomically(
            [
                Parameter("thermal_norm", value="percentile"),
                Parameter("thermal_low", value=2.0),
                Parameter("thermal_high", value=98.0),
            ]
        )
        assert results.successful
        assert node.cfg.thermal_norm.mode == "percentile" and node.cfg.thermal_norm.low == 2.0
    finally:
        node.destroy_node()


def test_live_parameters_update_the_running_config(context):
    node = make_node(context)
    try:
        node.set_parameters(
            [Parameter("sync_slop", value=0.2), Parameter("thermal_crop", value=[2, 4, 100, 80])]
        )
        assert node.cfg.sync.slop == 0.2
        assert node.cfg.geometry.crop == (2, 4, 100, 80)
    finally:
        node.destroy_node()


def test_bad_value_at_start_up_fails_with_the_reason(context):
    with pytest.raises(Exception, match="on_timeout"):
        make_node(context, on_timeout="sometimes")


def test_configure_with_a_missing_checkpoint_fails_but_node_lives(context):
    from rclpy.lifecycle import TransitionCallbackReturn

    node = make_node(context, checkpoint="/nonexistent/model.safetensors")
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.state_label == "unconfigured"
        status = node.diagnostics_status()
        assert status.message.startswith("unconfigured: configure failed: FileNotFoundError")
        assert "/nonexistent/model.safetensors" in status.message
    finally:
        node.destroy_node()


def test_params_file_documents_every_parameter_with_its_default():
    from ivtuning_ros.ros.params import params_yaml

    text = (ROOT / "config" / "ivtuning.yaml").read_text()
    assert text == params_yaml(), "config/ivtuning.yaml is stale: regenerate it (params_yaml)"
    params = yaml.safe_load(text)["/**"]["ros__parameters"]
    assert set(params) == set(SPECS)
    for name, spec in SPECS.items():
        assert params[name] == spec.default, name
        assert f"    {name}:" in text
        comment_line = text.split(f"    {name}:")[0].rstrip().splitlines()[-1]
        assert comment_line.strip().startswith("#"), f"{name} has no comment"


def test_launch_file_names_an_executable_and_files_that_exist():
    path = ROOT / "launch" / "ivtuning.launch.py"
    tree = ast.parse(path.read_text())
    funcs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "generate_launch_description" in funcs
    calls = {
        kw.arg: kw.value.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Node"
        for kw in n.keywords
        if isinstance(kw.value, ast.Constant)
    }
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert "ivtuning_node" in strings
    assert calls.get("executable") in ("ivtuning_node", "rviz2")
    # the executable exists for `ros2 run` (CMake installs scripts/) and for pip
    launcher = ROOT / "scripts" / "ivtuning_node"
    assert launcher.is_file() and launcher.stat().st_mode & 0o111
    assert "ivtuning_node = ivtuning_ros.ros.node:main" in (ROOT / "setup.py").read_text()
    assert "scripts/ivtuning_node" in (ROOT / "CMakeLists.txt").read_text()
    for name in ("ivtuning.yaml", "ivtuning.rviz"):
        assert name in strings
        assert (ROOT / "config" / name).is_file()
    # remapped topics are the node's defaults
    for topic in ("rgb/image_raw", "thermal/image_raw", "rgb/camera_info"):
        assert topic in strings
        assert topic in {SPECS[k].default for k in SPECS if k.endswith("_topic")}


def test_rviz_layout_shows_the_nodes_topics_under_its_namespace_and_remaps():
    """Every rviz topic is relative and one the node subscribes or publishes; the launch
    file starts rviz2 in the node's namespace with the node's camera remaps, so a
    namespaced or remapped node still fills every panel."""
    cfg = yaml.safe_load((ROOT / "config" / "ivtuning.rviz").read_text())
    topics = [d["Topic"]["Value"] for d in cfg["Visualization Manager"]["Displays"]]
    assert topics == ["rgb/image_raw", "thermal/image_raw", "overlay", "mask_color"]
    inputs = {SPECS[k].default for k in SPECS if k.endswith("_topic")}
    outputs = {"detections", "vision_detections", "overlay", "mask", "mask_color", "label_map"}
    assert all(not t.startswith("/") and t in inputs | outputs for t in topics)
    tree = ast.parse((ROOT / "launch" / "ivtuning.launch.py").read_text())
    nodes = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Node"
    ]
    kwargs = [{kw.arg: ast.dump(kw.value) for kw in n.keywords} for n in nodes]
    assert len(kwargs) == 2 and kwargs[0]["namespace"] == kwargs[1]["namespace"]
    assert (
        kwargs[0]["remappings"]
        == kwargs[1]["remappings"]
        == ast.dump(ast.Name("camera_remaps", ast.Load()))
    )


def test_thermal_norm_by_encoding_preset_or_checkpoint():
    from ivtuning_ros.preprocess import THERMAL_PRESETS, ThermalNorm

    defaults = default_values()
    trained = ThermalNorm("fixed", 10.0, 200.0)
    checkpoint = node_config({**defaults, "thermal_norm": "checkpoint"})
    assert checkpoint.norm_for("mono16", trained) is trained
    auto = node_config(defaults)  # default: the training norm where it fits the encoding
    assert auto.norm_for("mono8", trained) is trained
    assert auto.norm_for("16UC1", trained) == THERMAL_PRESETS["y16_percentile"]
    assert auto.norm_for("32FC1", trained) == THERMAL_PRESETS["celsius"]
    celsius_model = THERMAL_PRESETS["celsius"]
    assert auto.norm_for("mono8", celsius_model) == THERMAL_PRESETS["agc8"]
    per_frame = ThermalNorm("percentile", 2.0, 98.0)
    assert auto.norm_for("mono16", per_frame) is per_frame
    linear = node_config(
        {**defaults, "thermal_norm": "fixed", "thermal_low": -10.0, "thermal_high": 40.0}
    )
    assert linear.norm_for("32FC1", trained) == ThermalNorm("fixed", -10.0, 40.0)


def test_a_negative_score_threshold_defers_to_the_checkpoint():
    defaults = default_values()
    auto = node_config(defaults)
    assert auto.score_threshold < 0  # the default: the checkpoint's validated threshold
    assert auto.score_threshold_for(0.42) == 0.42
    assert auto.score_threshold_for(None) == FALLBACK_SCORE_THRESHOLD
    fixed = node_config({**defaults, "score_threshold": 0.6})
    assert fixed.score_threshold_for(0.42) == 0.6
    assert node_config({**defaults, "score_threshold": 0.0}).score_threshold_for(0.42) == 0.0


def test_node_config_is_the_typed_parameter_table():
    """Every parameter is a typed NodeConfig field with its documentation beside it; the
    settings loader refuses a wrong type or an unknown name, naming the parameter."""
    import dataclasses
    import typing

    from ivtuning_ros.ros.params import NodeConfig, default_values, node_config
    from ivtuning_ros.settings import convert

    fields = {f.name for f in dataclasses.fields(NodeConfig) if f.init}
    assert fields == set(SPECS)
    hints = typing.get_type_hints(NodeConfig)
    for name, spec in SPECS.items():  # each default fits its declared type
        assert convert(hints[name], spec.default, name) == spec.default, name
    cfg = node_config(default_values())
    assert cfg.score_threshold == SPECS["score_threshold"].default and cfg.sync.slop == 0.05
    with pytest.raises(ValueError, match="sync_slop: expected a number, got 'x'"):
        node_config({**default_values(), "sync_slop": "x"})
    with pytest.raises(ValueError, match="unknown key bogus"):
        node_config({**default_values(), "bogus": 1})
