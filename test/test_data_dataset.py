"""PreparedDataset: letterboxed tensors and targets, augmentation, modality dropout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ivtuning_ros.data.dataset import PreparedDataset, augment_sample, collate
from ivtuning_ros.preprocess import THERMAL_PRESETS, prepare_pair
from ivtuning_ros.types import RGBTSample


def _sample(h=60, w=100) -> RGBTSample:
    """A scene with one bright rectangle, marked identically in every stream and target."""
    rgb = np.full((h, w, 3), 20, np.uint8)
    thermal = np.full((h, w), 50.0, np.float32)
    mask = np.zeros((h, w), np.uint8)
    sal = np.zeros((h, w), np.float32)
    x0, y0, x1, y1 = 62, 10, 80, 40
    rgb[y0:y1, x0:x1] = 230
    thermal[y0:y1, x0:x1] = 200.0
    mask[y0:y1, x0:x1] = 3
    sal[y0:y1, x0:x1] = 1.0
    return RGBTSample(rgb, thermal, "rect", np.array([[x0, y0, x1, y1]], np.float32),
                      np.array([2]), mask, sal)  # fmt: skip


def test_targets_follow_the_letterbox():
    s = _sample()
    ds = PreparedDataset([s], (64, 80), "agc8", "detection")
    rgb, th, tgt = ds[0]
    ref_rgb, ref_th, box = prepare_pair(s.rgb, s.thermal, (64, 80), THERMAL_PRESETS["agc8"])
    assert torch.equal(rgb, torch.from_numpy(ref_rgb)) and torch.equal(th, torch.from_numpy(ref_th))
    assert rgb.shape == (3, 64, 80) and th.shape == (1, 64, 80)
    assert torch.allclose(tgt["boxes"], torch.from_numpy(box.boxes_to_input(s.boxes)))
    assert tgt["labels"].dtype == torch.int64 and tgt["labels"].tolist() == [2]
    assert tgt["name"] == "rect" and tgt["orig_hw"] == (60, 100) and tgt["letterbox"] == box

    seg = PreparedDataset([s], (64, 80), "agc8", "segmentation")[0][2]["mask"]
    assert seg.shape == (64, 80) and seg.dtype == torch.int64
    _, py = box.pad_xy
    assert py > 0 and (seg[:py] == 255).all() and (seg[-py:] == 255).all()  # padding ignored
    assert set(seg.unique().tolist()) == {0, 3, 255}  # nearest: no blended ids
    sal = PreparedDataset([s], (64, 80), "agc8", "saliency")[0][2]["saliency"]
    assert sal.shape == (1, 64, 80) and sal.dtype == torch.float32 and float(sal.max()) == 1.0


@pytest.mark.parametrize("max_zoom_out", [1.0, 1.6])
def test_augmentation_keeps_streams_and_targets_aligned(max_zoom_out):
    s = _sample()
    seen_flip = seen_crop = seen_zoom_out = False
    for seed in range(30):
        a = augment_sample(s, np.random.default_rng(seed), max_zoom_out=max_zoom_out)
        assert a.rgb.shape[:2] == a.thermal.shape == a.mask.shape == a.saliency.shape
        seen_crop |= a.thermal.shape < s.thermal.shape
        if a.thermal.shape > s.thermal.shape:  # zoomed out: the canvas around is ignored
            seen_zoom_out = True
            assert (a.mask == 255).sum() >= a.mask.size - s.mask.size
            assert np.median(a.thermal) == np.median(s.thermal)
        ((x0, y0, x1, y1),) = a.boxes.astype(int)
        seen_flip |= x0 < 50
        hot = a.thermal > 100
        assert np.array_equal(hot, a.rgb[..., 0] > 100)
        assert np.array_equal(hot, a.mask == 3) and np.array_equal(hot, a.saliency > 0.5)
        ys, xs = np.nonzero(hot)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
    assert seen_flip and seen_crop and seen_zoom_out == (max_zoom_out > 1)


def test_augmentation_is_reproducible_per_epoch():
    ds = PreparedDataset([_sample()] * 4, (64, 80), "agc8", "detection", augment=True, seed=3)
    a = [ds[i][2]["boxes"] for i in range(4)]
    assert all(torch.equal(x, ds[i][2]["boxes"]) for i, x in enumerate(a))
    ds.set_epoch(1)
    b = [ds[i][2]["boxes"] for i in range(4)]
    assert any(not torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_modality_dropout_uses_the_neutral_fill():
    ds = PreparedDataset([_sample()] * 20, (64, 80), "agc8", "detection", modality_dropout=1.0)
    dropped = {"rgb": 0, "thermal": 0}
    for i in range(20):
        rgb, th, _ = ds[i]
        blank_rgb, blank_th = bool((rgb == 0.5).all()), bool((th == 0.5).all())
        assert blank_rgb != blank_th  # exactly one stream blanked
        dropped["rgb" if blank_rgb else "thermal"] += 1
    assert min(dropped.values()) > 0
    ref = prepare_pair(None, _sample().thermal, (64, 80), THERMAL_PRESETS["agc8"])[0]
    assert np.array_equal(ref, np.full_like(ref, 0.5))
    none = PreparedDataset([_sample()] * 5, (64, 80), "agc8", "detection", modality_dropout=0.0)
    assert not any(bool((none[i][0] == 0.5).all()) for i in range(5))


@pytest.mark.parametrize("stream", ["rgb", "thermal"])
def test_modality_dropout_of_one_stream_blanks_only_that_stream(stream):
    ds = PreparedDataset([_sample()] * 10, (64, 80), "agc8", "detection",
                         modality_dropout=1.0, dropout_stream=stream)  # fmt: skip
    for i in range(10):
        rgb, th, _ = ds[i]
        assert bool((rgb == 0.5).all()) == (stream == "rgb")
        assert bool((th == 0.5).all()) == (stream == "thermal")
    half = PreparedDataset([_sample()] * 40, (64, 80), "agc8", "detection",
                           modality_dropout=0.5, dropout_stream=stream, seed=1)  # fmt: skip
    blanked = sum(bool((half[i][0 if stream == "rgb" else 1] == 0.5).all()) for i in range(40))
    assert 8 <= blanked <= 32  # about half, never all or none
    with pytest.raises(ValueError, match="dropout_stream 'ir' is not one of either, rgb"):
        PreparedDataset([], (64, 80), "agc8", "detection", dropout_stream="ir")


def test_collate_and_bad_arguments():
    ds = PreparedDataset([_sample()] * 3, (32, 48), "agc8", "detection")
    rgb, th, targets = collate([ds[i] for i in range(3)])
    assert rgb.shape == (3, 3, 32, 48) and th.shape == (3, 1, 32, 48) and len(targets) == 3
    with pytest.raises(ValueError, match="unknown task"):
        PreparedDataset([], (32, 48), "agc8", "depth")
    with pytest.raises(ValueError, match="unknown thermal norm"):
        PreparedDataset([], (32, 48), "agc9", "detection")
    s = _sample()
    s.mask = None
    with pytest.raises(ValueError, match="no segmentation mask"):
        PreparedDataset([s], (32, 48), "agc8", "segmentation")[0]
