"""Output messages, overlay drawing, thermal geometry and diagnostics (no DDS needed)."""

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from ivtuning_ros.geometry import ThermalGeometry
from ivtuning_ros.ros import outputs
from ivtuning_ros.ros.codec import image_to_rgb
from ivtuning_ros.ros.diagnostics import ERROR, OK, WARN, NodeStats, RateMeter, build_status
from ivtuning_ros.types import Detections

NAMES = ("person", "car", "bicycle", "dog")
HEADER = Header(stamp=Time(sec=12, nanosec=345), frame_id="rgb_optical")


def dets() -> Detections:
    return Detections(
        np.array([[10, 20, 50, 80], [60, 10, 90, 40]], np.float32),
        np.array([0.9, 0.4], np.float32),
        np.array([0, 3], np.int64),
    )


def test_detection_array_carries_the_input_header_and_fields():
    msg = outputs.detections_msg(dets(), NAMES, HEADER, 1, None, 12.5)
    assert msg.header.stamp.sec == 12 and msg.header.stamp.nanosec == 345
    assert msg.header.frame_id == "rgb_optical"
    assert msg.modalities == msg.MODALITY_RGB_ONLY and msg.inference_time_ms == 12.5
    assert [d.class_name for d in msg.detections] == ["person", "dog"]
    d = msg.detections[1]
    assert (d.class_id, d.x_min, d.y_min, d.x_max, d.y_max) == (3, 60, 10, 90, 40)
    assert d.score == pytest.approx(0.4)


def test_vision_detections_are_the_same_boxes_as_centre_and_size():
    boxes = dets()
    boxes.class_ids[1] = 9  # not in the label list: named by its number
    msg = outputs.vision_detections_msg(boxes, NAMES, HEADER)
    assert type(msg).__name__ == "Detection2DArray"
    assert (msg.header.stamp.sec, msg.header.frame_id) == (12, "rgb_optical")
    assert len(msg.detections) == 2
    first, second = msg.detections
    assert first.header.frame_id == "rgb_optical" and first.header.stamp.nanosec == 345
    assert (first.bbox.center.position.x, first.bbox.center.position.y) == (30, 50)
    assert (first.bbox.size_x, first.bbox.size_y, first.bbox.center.theta) == (40, 60, 0)
    (hyp,) = first.results
    assert hyp.hypothesis.class_id == "person"
    assert hyp.hypothesis.score == pytest.approx(0.9)
    assert second.results[0].hypothesis.class_id == "9"
    assert (second.bbox.center.position.x, second.bbox.size_y) == (75, 30)
    assert first.id == ""  # a detector does not track
    assert outputs.vision_detections_msg(Detections.empty(), NAMES, HEADER).detections == []


def test_mask_messages_and_label_map_agree():
    mask = np.array([[0, 1], [255, 3]], np.uint8)
    mono = outputs.mask_msg(mask, HEADER)
    colour = outputs.colour_mask_msg(mask, len(NAMES), HEADER)
    assert (mono.encoding, colour.encoding) == ("mono8", "rgb8")
    assert mono.header.frame_id == colour.header.frame_id == "rgb_optical"
    rgb = image_to_rgb(colour)
    lm = outputs.label_map_msg(NAMES, HEADER)
    assert list(lm.class_ids) == [0, 1, 2, 3] and list(lm.class_names) == list(NAMES)
    c1 = lm.colors[1]
    assert tuple(rgb[0, 1]) == (round(c1.r * 255), round(c1.g * 255), round(c1.b * 255))
    assert tuple(rgb[1, 0]) == (0, 0, 0)  # ignore id stays black
    assert len({tuple(c) for c in outputs.palette(4)[:4]}) == 4


def test_overlay_draws_boxes_mask_and_thermal_pip_without_touching_input():
    rgb = np.full((64, 96, 3), 40, np.uint8)
    before = rgb.copy()
    thermal = np.linspace(0, 1, 64 * 96, dtype=np.float32).reshape(64, 96)
    img = outputs.render_overlay(rgb, NAMES, dets(), thermal01=thermal, banner="RGB ONLY")
    np.testing.assert_array_equal(rgb, before)
    assert img.shape == rgb.shape and img.dtype == np.uint8
    box_colour = outputs.palette(4)[0]
    assert (img[20:81, 10] == box_colour).all(axis=1).any()  # left edge of box 0
    assert (img[:10, 96 - 24 :] != 40).any()  # picture-in-picture, top right
    mask = np.zeros((64, 96), np.uint8)
    mask[:, 48:] = 255
    blended = outputs.render_overlay(rgb, NAMES, mask=mask, mask_alpha=1.0)
    assert (blended[:, :48] == outputs.palette(4)[0]).all()
    assert (blended[:, 48:] == 40).all()


def test_geometry_resizes_crops_and_warps_onto_the_rgb_grid():
    thermal = np.arange(40 * 50, dtype=np.float32).reshape(40, 50)
    assert ThermalGeometry().apply(thermal, (80, 100)).shape == (80, 100)
    crop = ThermalGeometry(crop=(5, 0, 40, 40))
    out = crop.apply(thermal, (64, 64))
    assert out.shape == (64, 64) and out[0, 0] == thermal[0, 5]
    shift = ThermalGeometry(affine=(1.0, 0.0, 3.0, 0.0, 1.0, 0.0))  # 3 px to the right
    warped = shift.apply(thermal, (40, 50))
    np.testing.assert_allclose(warped[:, 10], thermal[:, 7])
    assert ThermalGeometry().aspect_mismatch((512, 640), (480, 640))
    assert not ThermalGeometry().aspect_mismatch((256, 320), (480, 600))
    assert not crop.aspect_mismatch((40, 50), (64, 64))
    with pytest.raises(ValueError, match="exceeds the thermal image"):
        ThermalGeometry(crop=(20, 0, 40, 40)).apply(thermal, (64, 64))


def test_rate_meter_and_percentiles_follow_a_fake_clock():
    t = [0.0]
    meter = RateMeter(window=2.0, clock=lambda: t[0])
    for _ in range(21):
        meter.tick()
        t[0] += 0.1
    assert meter.rate() == pytest.approx(10.0, rel=0.1)
    assert meter.jitter() == pytest.approx(0.0, abs=1e-9)  # perfectly regular ticks
    t[0] += 5.0
    assert meter.rate() == 0.0 and meter.since_last() == pytest.approx(5.1)

    stats = NodeStats(clock=lambda: t[0])
    for ms in range(1, 101):
        stats.result(inference_s=ms / 1e3, latency_s=2 * ms / 1e3)
    snap = stats.snapshot()
    assert snap["inference_p50_ms"] == pytest.approx(50.5)
    assert snap["latency_p95_ms"] == pytest.approx(190.1)


def test_diagnostic_levels_name_the_silent_camera_and_list_reasons():
    t = [100.0]
    stats = NodeStats(clock=lambda: t[0])
    stats.tick("rgb")
    stats.count("thermal_bad_input", "thermal: unsupported encoding 'yuv422'")
    status = build_status("n", "hw", "active", stats.snapshot(), {"pairs": 3}, {}, 1.0)
    assert status.level == WARN and "no thermal input" in status.message
    values = {kv.key: kv.value for kv in status.values}
    assert values["count thermal_bad_input"] == "1"
    assert "yuv422" in values["reason thermal_bad_input"]
    assert values["count pairs"] == "3"
    # results stop when the camera left cannot run alone (a thermal-primary model)
    status = build_status("n", "hw", "active", stats.snapshot(), {}, {}, 1.0, ("thermal",))
    assert status.level == ERROR and status.message == (
        "no thermal input for over 1 s: no results, lone rgb frames are dropped (on_timeout)"
    )
    t[0] += 5.0
    status = build_status("n", "hw", "active", stats.snapshot(), {}, {}, 1.0)
    assert status.level == ERROR
    assert build_status("n", "hw", "inactive", stats.snapshot(), {}, {}, 1.0).level == OK


def test_a_thermal_frame_shared_by_rgb_frames_is_decoded_once():
    """sync_policy reference pairs one thermal frame with several RGB frames: with a memo
    the second pair reuses the first one's thermal input; a new config, RGB size or frame
    does not."""
    from ivtuning_ros.preprocess import THERMAL_PRESETS
    from ivtuning_ros.ros.codec import array_to_image
    from ivtuning_ros.ros.params import SPECS, node_config
    from ivtuning_ros.ros.pipeline import ThermalMemo, pair_inputs
    from ivtuning_ros.ros.sync import Frame, SyncedPair

    rng = np.random.default_rng(0)
    thermal = Frame(1, 1, 0.0, array_to_image(rng.integers(0, 9000, (24, 32), np.uint16), "mono16"))
    rgb = [
        Frame(i, i, 0.0, array_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8")) for i in (2, 3)
    ]
    small_rgb = Frame(4, 4, 0.0, array_to_image(np.zeros((24, 32, 3), np.uint8), "rgb8"))
    cfg = node_config({name: spec.default for name, spec in SPECS.items()})
    norm, memo, counted = THERMAL_PRESETS["agc8"], ThermalMemo(), []

    def inputs(rgb_frame, thermal_frame=thermal, config=cfg):
        return pair_inputs(SyncedPair(rgb_frame, thermal_frame), config, norm, None,
                           lambda key, why: counted.append(key), memo)[1]  # fmt: skip

    first = inputs(rgb[0])
    assert inputs(rgb[1]) is first and not first.flags.writeable  # shared, so read-only
    fresh = pair_inputs(SyncedPair(rgb[1], thermal), cfg, norm, None, lambda k, w: None)[1]
    np.testing.assert_array_equal(first, fresh)  # what a memo-less call gives
    assert inputs(small_rgb) is not first and inputs(small_rgb).shape == (24, 32)
    assert inputs(rgb[0], config=node_config(dict(cfg.values))) is not first
    other = Frame(5, 5, 0.0, array_to_image(np.full((24, 32), 7, np.uint16), "mono16"))
    assert inputs(rgb[0], thermal_frame=other) is not first
    assert counted == []  # 32x24 and 64x48 share their aspect ratio
    wide = Frame(6, 6, 0.0, array_to_image(np.zeros((48, 96, 3), np.uint8), "rgb8"))
    assert inputs(wide) is inputs(wide)
    assert counted == ["thermal_aspect_mismatch"] * 2  # counted per pair, hit or not


def test_modality_ids_are_the_messages_constants():
    from ivtuning_ros.msg import DetectionArray
    from ivtuning_ros.ros.outputs import MODALITY

    assert MODALITY == {
        "both": DetectionArray.MODALITY_BOTH,
        "rgb": DetectionArray.MODALITY_RGB_ONLY,
        "thermal": DetectionArray.MODALITY_THERMAL_ONLY,
    }
