"""The night/fog scene generator: determinism, physics sanity, annotations, write/read."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ivtuning_ros.data.conditions import CONDITIONS, get_condition
from ivtuning_ros.data.dataset import open_dataset
from ivtuning_ros.data.scene import SEG_CLASSES, SEG_OFFSET, SYNTH_CLASSES
from ivtuning_ros.data.synthetic import (
    SceneSequence,
    generate,
    render_sample,
    sample_spec,
    split_seed,
    write_synthetic,
)
from ivtuning_ros.tools.cli import main as cli_main

SIZE = (160, 128)


def test_every_condition_renders_valid_samples():
    assert {"clear_night", "light_fog", "dense_fog", "patchy_fog", "rain_glare"} <= set(CONDITIONS)
    for name in CONDITIONS:
        s = render_sample(name, 7, SIZE)
        assert s.rgb.shape == (128, 160, 3) and s.rgb.dtype == np.uint8
        assert s.thermal.shape == (128, 160) and s.thermal.dtype == np.float32
        assert s.thermal.min() >= 0 and s.thermal.max() <= 255
        assert s.mask.shape == (128, 160) and set(np.unique(s.mask)) <= {*range(6), 255}
        assert s.saliency.dtype == np.float32 and set(np.unique(s.saliency)) <= {0.0, 1.0}
        assert s.boxes.shape == (len(s.labels), 4)
        assert (s.boxes[:, 2] > s.boxes[:, 0]).all() and (s.boxes[:, 3] > s.boxes[:, 1]).all()
        assert set(s.labels.tolist()) <= set(range(len(SYNTH_CLASSES)))
        assert s.rgb.mean() < 130, f"{name}: a night image should be dark"


def test_unknown_condition_is_named():
    with pytest.raises(ValueError, match="unknown condition 'fgo'"):
        get_condition("fgo")


def test_deterministic_by_seed():
    a, b = render_sample("patchy_fog", 3, SIZE), render_sample("patchy_fog", 3, SIZE)
    c = render_sample("patchy_fog", 4, SIZE)
    for field in ("rgb", "thermal", "boxes", "labels", "mask", "saliency"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert not np.array_equal(a.rgb, c.rgb)
    names = [s.name for s in generate(["clear_night", "rain_glare"], 3, seed=1, size=SIZE)]
    assert names == [sample_spec(["clear_night", "rain_glare"], 1, i)[2] for i in range(3)]
    assert names[1].startswith("rain_glare")
    assert split_seed(0, "train") != split_seed(0, "val")


def test_boxes_are_tight_around_visible_object_pixels():
    checked = 0
    for seed in range(6):
        s = render_sample("clear_night", seed, SIZE)
        for box, label in zip(s.boxes.astype(int), s.labels, strict=True):
            x0, y0, x1, y1 = box
            inside = s.mask[y0:y1, x0:x1] == label + SEG_OFFSET
            # every edge row/column of the box touches the object (tight box)
            assert inside[0].any() and inside[-1].any(), (seed, box)
            assert inside[:, 0].any() and inside[:, -1].any(), (seed, box)
            checked += 1
        labelled = np.isin(s.mask, np.arange(SEG_OFFSET, len(SEG_CLASSES)))
        ys, xs = np.nonzero(labelled)
        for y, x in zip(ys[::50], xs[::50], strict=True):  # object pixels lie in some box
            assert any(b[0] <= x < b[2] and b[1] <= y < b[3] for b in s.boxes)
    assert checked > 10


def test_warm_bodies_are_warmer_than_their_surroundings_in_thermal():
    diffs = []
    for seed in range(8):
        s = render_sample("clear_night", seed, SIZE)
        for box, label in zip(s.boxes.astype(int), s.labels, strict=True):
            if SYNTH_CLASSES[label] not in ("person", "dog"):
                continue
            x0, y0, x1, y1 = box
            pad = 3
            win = s.thermal[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad]
            obj = s.mask[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad] == (
                label + SEG_OFFSET
            )
            if obj.sum() < 15 or (~obj).sum() < 15:
                continue
            diffs.append(win[obj].mean() - win[~obj].mean())
    assert len(diffs) >= 5
    assert np.mean(np.array(diffs) > 0) >= 0.9, diffs


def _quiet(name: str):
    c = get_condition(name)
    return dataclasses.replace(c, read_noise=0.0, shot_noise=0.0, glow=0.0, glare=0.0)


def test_fog_follows_koschmieder_and_spares_thermal():
    """A checkerboard at 5 m and at 40 m: fog scales its RGB contrast by t = exp(-beta d)
    (in linear light) and barely touches the thermal contrast."""
    from ivtuning_ros.data.render import ROAD, _rgb_image, _thermal_image

    seq = SceneSequence("clear_night", 1, (128, 64))
    st = seq._renderer.static
    h, w = 64, 128
    dist = np.where(np.arange(w) < w // 2, 5.0, 40.0).astype(np.float32)[None].repeat(h, 0)
    check = ((np.arange(h)[:, None] // 8 + np.arange(w)[None] // 8) % 2).astype(np.float32)
    albedo = np.repeat((0.2 + 0.4 * check)[..., None], 3, axis=2)
    light = np.full((h, w, 3), 0.3, np.float32)
    kind = np.full((h, w), ROAD, np.uint8)
    temp = np.float32(seq.scene.ambient_c) + 10.0 * check

    def contrast(img, cols):
        img = img[:, cols]
        return img[check[:, cols] > 0].mean() - img[check[:, cols] == 0].mean()

    rng = np.random.default_rng(0)
    out = {}
    for name in ("clear_night", "dense_fog"):
        cond = _quiet(name)
        rgb = _rgb_image(cond, albedo, light, np.zeros_like(albedo), dist, cond.fog_beta, kind, rng)
        lin = ((rgb.astype(np.float32) / 255.0) ** 2.2).mean(axis=2)
        th = _thermal_image(seq.scene, cond, temp, dist, st, rng, 16)
        inner = slice(12, w // 2 - 12), slice(w // 2 + 12, w - 12)  # away from the blur edge
        out[name] = [(contrast(lin, c), contrast(th, c)) for c in inner]
    beta = get_condition("dense_fog").fog_beta
    for (clear_rgb, clear_th), (fog_rgb, fog_th), d in zip(
        out["clear_night"], out["dense_fog"], (5, 40), strict=True
    ):
        expected = np.exp(-beta * d) / np.exp(-get_condition("clear_night").fog_beta * d)
        assert fog_rgb / clear_rgb == pytest.approx(expected, rel=0.1, abs=0.02)
        assert fog_th / clear_th > 0.85  # LWIR sees through the same fog
    assert out["dense_fog"][1][0] / out["clear_night"][1][0] < 0.1


def test_sequence_moves_smoothly():
    seq = SceneSequence("light_fog", 5, SIZE)
    a, b = seq.frame(1.0), seq.frame(1.05)
    assert not np.array_equal(a.rgb, b.rgb)
    assert np.array_equal(seq.frame(1.0).rgb, a.rgb)  # repeatable per t
    positions = {
        i: [actor.position(t) for t in (1.0, 1.05)] for i, actor in enumerate(seq.scene.actors)
    }
    for (x0, z0), (x1, z1) in positions.values():
        # 50 ms at road speeds moves less than a metre (or wraps, out of view)
        assert np.hypot(x1 - x0, z1 - z0) < 1.0 or abs(z1 - z0) > 50 or abs(x1 - x0) > 10


def test_sixteen_bit_thermal_is_centikelvin():
    s = render_sample("clear_night", 2, SIZE, thermal_bits=16)
    assert s.thermal.min() > 240 * 100 and s.thermal.max() < 400 * 100
    assert np.array_equal(s.thermal, np.round(s.thermal))


def test_written_data_reads_back_identically(tmp_path):
    out = tmp_path / "synth"
    written = write_synthetic(out, ["dense_fog", "clear_night"], {"train": 3, "val": 2}, seed=4,
                              size=SIZE, progress=False)  # fmt: skip
    assert set(written) == {"train", "val"}
    ds = open_dataset(out, split="train")  # auto-detected as COCO
    assert ds.tasks == ("detection", "segmentation", "saliency")
    assert ds.class_names == SYNTH_CLASSES
    assert ds.class_names_for("segmentation") == SEG_CLASSES
    assert len(ds) == 3
    for i, s in enumerate(ds):
        cond, seed, name = sample_spec(["dense_fog", "clear_night"], split_seed(4, "train"), i)
        ref = render_sample(cond, seed, SIZE, name=name)
        assert s.name == ref.name
        for field in ("rgb", "thermal", "boxes", "labels", "mask", "saliency"):
            assert np.array_equal(getattr(s, field), getattr(ref, field)), field
    with pytest.raises(ValueError, match="exists"):
        write_synthetic(out, ["dense_fog"], {"train": 1}, size=SIZE, progress=False)


def test_sixteen_bit_round_trip(tmp_path):
    write_synthetic(tmp_path, ["rain_glare"], {"test": 1}, seed=1, size=SIZE, thermal_bits=16,
                    tasks=("detection",), progress=False)  # fmt: skip
    ds = open_dataset(tmp_path, "synthetic", split="test")
    assert ds.tasks == ("detection",)
    s = ds[0]
    assert s.thermal.max() > 255  # counts, not rescaled
    cond, seed, _ = sample_spec(["rain_glare"], split_seed(1, "test"), 0)
    assert np.array_equal(s.thermal, render_sample(cond, seed, SIZE, 16).thermal)


def test_make_data_cli(tmp_path, capsys):
    rc = cli_main(["make-data", "--condition", "light_fog,patchy_fog", "--count", "2",
                   "--split-name", "val", "--out", str(tmp_path), "--size", "96x64"])  # fmt: skip
    assert rc == 0
    assert "val: 2 pairs" in capsys.readouterr().out
    ds = open_dataset(tmp_path, split="val")
    assert ds[0].rgb.shape == (64, 96, 3)
    assert ds[1].name.startswith("patchy_fog")
    assert (
        cli_main(["make-data", "--condition", "nope", "--count", "1", "--out", str(tmp_path)]) == 2
    )
    assert "unknown condition" in capsys.readouterr().err


def _scene_with(actors, seed=0):
    from ivtuning_ros.data.render import FrameRenderer
    from ivtuning_ros.data.scene import sample_scene

    cond = _quiet("clear_night")
    base = sample_scene(np.random.default_rng(seed), (320, 256), cond)
    scene = dataclasses.replace(base, actors=tuple(actors), lamps=())
    return FrameRenderer(scene, cond).render(0.0, np.random.default_rng(0))


def _actor(kind, cls, x, z, size):
    from ivtuning_ros.data.scene import Actor

    return Actor(kind, cls, x, z, 0.0, 0.0, size, (0.3, 0.3, 0.3), 0.5, 0.0, 1,
                 (-1e3, 1e3), (-1e3, 1e3), False)  # fmt: skip


def test_occluded_objects_get_visible_boxes_or_none():
    alone = _scene_with([_actor("person", 0, 0.6, 20.0, 1.8)])
    assert alone.labels.tolist() == [0]
    full = alone.boxes[0]
    # legs hidden behind a nearer, low car: the box keeps only the visible upper body
    half = _scene_with([_actor("person", 0, 0.6, 20.0, 1.8), _actor("car", 1, 0.6, 10.0, 1.2)])
    assert sorted(half.labels.tolist()) == [0, 1]
    person = half.boxes[half.labels.tolist().index(0)]
    car = half.boxes[half.labels.tolist().index(1)]
    assert person[1] == full[1] and person[3] < full[3] and person[3] == car[1]
    # all but the head hidden: not labelled, and its visible pixels are "ignore"
    hidden = _scene_with([_actor("person", 0, 0.0, 30.0, 1.8), _actor("car", 1, 0.0, 8.0, 1.6)])
    assert hidden.labels.tolist() == [1]
    assert not (hidden.mask == SEG_OFFSET).any()


def test_zoom_is_a_longer_lens_on_the_same_scenes(tmp_path, capsys):
    """zoom multiplies the focal length only: the same seeds give the same scenes seen
    through a longer lens, so objects get larger; the written set records it."""
    from ivtuning_ros.data.scene import sample_scene
    from ivtuning_ros.train.config import SyntheticSpec
    from ivtuning_ros.train.data import synthetic_folder

    cond = get_condition("light_fog")
    wide, tele = (sample_scene(np.random.default_rng(3), SIZE, cond, z) for z in (1.0, 1.6))
    assert tele.camera.focal == pytest.approx(1.6 * wide.camera.focal)
    assert tele.actors == wide.actors and tele.camera.horizon == wide.camera.horizon
    heights = {}
    for zoom in (1.0, 1.6):
        samples = generate(["clear_night"], 12, 5, SIZE, zoom=zoom)
        heights[zoom] = np.concatenate([s.boxes[:, 3] - s.boxes[:, 1] for s in samples])
    # (a narrower view also loses the near, off-centre objects, so less than 1.6x)
    assert np.median(heights[1.6]) > 1.1 * np.median(heights[1.0])
    with pytest.raises(ValueError, match="zoom"):
        render_sample("clear_night", 0, SIZE, zoom=0.0)
    with pytest.raises(ValueError, match="zoom"):
        SyntheticSpec(("clear_night",), 4, zoom=20.0)
    a, b = SyntheticSpec(("clear_night",), 4), SyntheticSpec(("clear_night",), 4, zoom=1.6)
    assert synthetic_folder(a, tmp_path) != synthetic_folder(b, tmp_path)
    rc = cli_main(["make-data", "--condition", "clear_night", "--count", "1", "--zoom", "1.6",
                   "--out", str(tmp_path / "z"), "--size", "96x64"])  # fmt: skip
    assert rc == 0
    capsys.readouterr()
    import json

    info = json.loads((tmp_path / "z" / "annotations" / "train.json").read_text())["info"]
    assert info["zoom"] == 1.6


def test_no_invalid_pixel_values_where_the_texture_noise_dips_deepest():
    """Regression: in this scene the road texture noise dipped below -1, the albedo went
    negative and the shot-noise sqrt produced NaN pixels (cast silently to 0)."""
    import warnings

    cond, seed, name = sample_spec(("clear_night", "light_fog"), split_seed(101, "data"), 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = render_sample(cond, seed, (256, 192), 8, name, zoom=1.6)
    assert np.isfinite(s.thermal).all()


def _high_frequency(thermal: np.ndarray) -> float:
    """Mean absolute difference between horizontal neighbours: edges and fine detail."""
    return float(np.abs(np.diff(thermal.astype(np.float32), axis=1)).mean())


def test_thermal_optics_sharpen_only_the_thermal_image():
    """A detector as fine as the image behind a light lens gives a sharper thermal image
    of the same scene; the RGB image and the labels do not change."""
    from ivtuning_ros.data.render import FrameRenderer
    from ivtuning_ros.data.scene import ThermalOptics, sample_scene

    cond = _quiet("clear_night")
    scene = sample_scene(np.random.default_rng(5), (320, 256), cond)
    assert scene.thermal_optics == ThermalOptics(0.5, 0.8)
    frames = {
        optics: FrameRenderer(dataclasses.replace(scene, thermal_optics=optics), cond).render(
            0.0, np.random.default_rng(0)
        )
        for optics in (ThermalOptics(), ThermalOptics(0.75, 0.6), ThermalOptics(1.0, 0.0))
    }
    soft, mid, sharp = frames.values()
    assert _high_frequency(soft.thermal) < _high_frequency(mid.thermal)
    assert _high_frequency(mid.thermal) < _high_frequency(sharp.thermal)
    for other in (mid, sharp):
        assert np.array_equal(other.rgb, soft.rgb)
        assert np.array_equal(other.boxes, soft.boxes) and np.array_equal(other.mask, soft.mask)
    with pytest.raises(ValueError, match="detector_scale"):
        ThermalOptics(detector_scale=0.0)
    with pytest.raises(ValueError, match="blur_sigma"):
        ThermalOptics(blur_sigma=-1.0)


def test_varied_thermal_optics_are_drawn_per_scene_and_repeatable(tmp_path, capsys):
    import hashlib
    import json

    from ivtuning_ros.data.scene import (
        VARIED_BLUR_SIGMA,
        VARIED_DETECTOR_SCALE,
        ThermalOptics,
        parse_thermal_optics,
    )
    from ivtuning_ros.train.config import SyntheticSpec
    from ivtuning_ros.train.data import synthetic_folder

    drawn = [SceneSequence("light_fog", seed, SIZE, thermal_optics="varied").scene.thermal_optics
             for seed in range(12)]  # fmt: skip
    assert len({o.detector_scale for o in drawn}) == 12
    for o in drawn:
        assert VARIED_DETECTOR_SCALE[0] <= o.detector_scale <= VARIED_DETECTOR_SCALE[1]
        assert VARIED_BLUR_SIGMA[0] <= o.blur_sigma <= VARIED_BLUR_SIGMA[1]
    assert SceneSequence("light_fog", 3, SIZE).scene.thermal_optics == ThermalOptics()
    a = render_sample("light_fog", 3, SIZE, thermal_optics="varied")
    b = render_sample("light_fog", 3, SIZE, thermal_optics="varied")
    assert np.array_equal(a.thermal, b.thermal)
    # the optics have their own random stream: the scene and its RGB image are the fixed one's
    fixed = render_sample("light_fog", 3, SIZE)
    assert np.array_equal(a.rgb, fixed.rgb) and np.array_equal(a.boxes, fixed.boxes)
    assert not np.array_equal(a.thermal, fixed.thermal)
    with pytest.raises(ValueError, match="thermal_optics must be fixed, varied or SCALE:SIGMA"):
        render_sample("light_fog", 3, SIZE, thermal_optics="sharp")
    # one camera for every scene: SCALE:SIGMA
    assert parse_thermal_optics("1:0.5") == ThermalOptics(1.0, 0.5)
    one = SceneSequence("light_fog", 3, SIZE, thermal_optics="0.7:0.4").scene.thermal_optics
    assert one == ThermalOptics(0.7, 0.4)
    with pytest.raises(ValueError, match="detector_scale"):
        parse_thermal_optics("2:0.5")
    with pytest.raises(ValueError, match="thermal_optics"):
        SyntheticSpec(("clear_night",), 4, thermal_optics="sharp")

    # training caches: a fixed spec keeps the folder it had before the option existed
    spec = SyntheticSpec(("clear_night",), 4)
    key = json.dumps({"conditions": ("clear_night",), "count": 4, "seed": 0,
                      "size": (320, 256)}, sort_keys=True)  # fmt: skip
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    assert synthetic_folder(spec, tmp_path).name == f"clear_night_4_s0_{digest}"
    varied_spec = SyntheticSpec(("clear_night",), 4, thermal_optics="varied")
    assert synthetic_folder(varied_spec, tmp_path) != synthetic_folder(spec, tmp_path)

    rc = cli_main(["make-data", "--condition", "clear_night", "--count", "1", "--thermal-optics",
                   "varied", "--out", str(tmp_path / "v"), "--size", "96x64"])  # fmt: skip
    assert rc == 0
    capsys.readouterr()
    info = json.loads((tmp_path / "v" / "annotations" / "train.json").read_text())["info"]
    assert info["thermal_optics"] == "varied"
    cond, seed, name = sample_spec(["clear_night"], split_seed(0, "train"), 0)
    ref = render_sample(cond, seed, (96, 64), name=name, thermal_optics="varied")
    bad = ["make-data", "--condition", "clear_night", "--count", "1", "--thermal-optics",
           "1:x", "--out", str(tmp_path / "bad")]  # fmt: skip
    with pytest.raises(SystemExit):
        cli_main(bad)
    assert "SCALE:SIGMA" in capsys.readouterr().err
    assert np.array_equal(open_dataset(tmp_path / "v", split="train")[0].thermal, ref.thermal)
