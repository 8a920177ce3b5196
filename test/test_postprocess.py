"""postprocess: thresholds, class-aware NMS and mapping back through the letterbox."""

import numpy as np
import pytest

from ivtuning_ros.postprocess import decode_detections, decode_mask, decode_saliency
from ivtuning_ros.preprocess import letterbox_for

# 480x640 source into the 256x320 network input: scale 0.5, 8 px of padding top and bottom.
BOX = letterbox_for((480, 640), (256, 320))


def _decode(boxes, scores, ids, **kw):
    return decode_detections(
        np.asarray(boxes, np.float32), np.asarray(scores, np.float32), np.asarray(ids), BOX, **kw
    )


def test_letterbox_geometry_assumed_by_these_tests():
    assert BOX.scale == 0.5 and BOX.pad_xy == (0, 8)


def test_boxes_map_to_source_pixels():
    det = _decode([[10, 18, 50, 108]], [0.9], [1])
    np.testing.assert_allclose(det.boxes, [[20, 20, 100, 200]], atol=1e-4)
    assert det.class_ids.dtype == np.int64 and det.class_ids.tolist() == [1]
    assert det.scores.tolist() == pytest.approx([0.9])


def test_score_threshold_is_inclusive_and_filters():
    det = _decode([[0, 10, 10, 20], [20, 30, 40, 50]], [0.3, 0.29], [0, 0], score_threshold=0.3)
    assert det.scores.tolist() == pytest.approx([0.3])


def test_nms_is_class_aware():
    boxes = [[10, 20, 60, 70], [12, 22, 62, 72], [11, 21, 61, 71]]
    same = _decode(boxes, [0.9, 0.8, 0.7], [2, 2, 2], iou_threshold=0.5)
    assert len(same) == 1 and same.scores[0] == pytest.approx(0.9)
    mixed = _decode(boxes, [0.9, 0.8, 0.7], [2, 2, 3], iou_threshold=0.5)
    assert sorted(mixed.class_ids.tolist()) == [2, 3]
    # IoU of the first two is about 0.86: a threshold above it keeps both.
    loose = _decode(boxes[:2], [0.9, 0.8], [2, 2], iou_threshold=0.9)
    assert len(loose) == 2


def test_output_sorted_by_score_and_cut_to_max_detections():
    rng = np.random.default_rng(0)
    xy = np.stack([rng.uniform(0, 300, 50), rng.uniform(10, 240, 50)], axis=1)
    boxes = np.concatenate([xy, xy + 5], axis=1)  # small boxes inside the real image area
    scores = rng.uniform(0.5, 1.0, size=50)
    det = _decode(boxes, scores, np.zeros(50, np.int64), iou_threshold=0.99, max_detections=7)
    assert len(det) == 7
    assert np.all(np.diff(det.scores) <= 0)
    assert det.scores[0] == pytest.approx(scores.max())


def test_boxes_clipped_and_padding_only_boxes_dropped():
    det = _decode([[-20, -5, 30, 40], [0, 0, 320, 6]], [0.9, 0.9], [0, 1])
    # The first is clipped to the image; the second lies wholly in the top padding.
    assert len(det) == 1
    np.testing.assert_allclose(det.boxes[0], [0, 0, 60, 64], atol=1e-4)


def test_empty_and_bad_inputs():
    assert len(_decode(np.zeros((0, 4)), [], [])) == 0
    assert len(_decode([[0, 10, 10, 20]], [0.1], [0])) == 0
    with pytest.raises(ValueError, match="disagree"):
        _decode([[0, 0, 1, 1]], [0.5, 0.4], [0])
    with pytest.raises(ValueError, match="non-finite"):
        _decode([[0, 0, np.nan, 1]], [0.5], [0])
    with pytest.raises(ValueError, match="iou_threshold"):
        _decode([[0, 0, 1, 1]], [0.5], [0], iou_threshold=1.5)


def test_mask_mapped_back_with_nearest_neighbour():
    ids = np.zeros((256, 320), np.int64)
    ids[8:128, :160] = 3  # top-left quarter of the real image area
    ids[128:248, 160:] = 7
    mask = decode_mask(ids, BOX)
    assert mask.shape == (480, 640) and mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) == {0, 3, 7}  # no blended ids
    assert (mask[:240, :320] == 3).all() and (mask[240:, 320:] == 7).all()
    assert (mask[:240, 320:] == 0).all()


def test_mask_errors_name_the_problem():
    with pytest.raises(ValueError, match="network input size"):
        decode_mask(np.zeros((10, 10), np.int64), BOX)
    bad = np.zeros((256, 320), np.int64)
    bad[0, 0] = 300
    with pytest.raises(ValueError, match="mono8"):
        decode_mask(bad, BOX)


def test_saliency_mapped_back_and_clipped():
    sal = np.zeros((1, 256, 320), np.float32)
    sal[0, 8:248, 160:] = 1.0
    out = decode_saliency(sal, BOX)
    assert out.shape == (480, 640) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out[:, :310].max() == 0.0 and out[:, 330:].min() == 1.0
    with pytest.raises(ValueError, match="saliency output"):
        decode_saliency(np.zeros((1, 100, 100), np.float32), BOX)
