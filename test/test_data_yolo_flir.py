"""MSRS / YOLO-txt and FLIR-aligned data sets in their published layouts (tiny fixtures
written with cv2 and plain text, as a user's download looks), their error cases, block
splits and class matching by name."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from ivtuning_ros.data.classes import ClassMismatch, Relabeled, match_classes
from ivtuning_ros.data.dataset import detect_format, open_dataset
from ivtuning_ros.data.formats.common import DatasetError
from ivtuning_ros.data.real import expand_path, missing_reason, real_data_root
from ivtuning_ros.data.splits import BlockSplit, block_split

H, W = 24, 32


def _img(seed: int, channels: int = 3) -> np.ndarray:
    shape = (H, W, channels) if channels > 1 else (H, W)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def _msrs(root: Path) -> Path:
    """MSRS as published: {split}/vi, {split}/ir (some IR 3-channel R=G=B), labels txt."""
    for split, names in (("train", ["00001D", "00003N"]), ("test", ["00004N", "00055D"])):
        for i, name in enumerate(names):
            _write(root / split / "vi" / f"{name}.png", _img(i))
            ir = _img(i + 10, 1)
            _write(root / split / "ir" / f"{name}.png", np.dstack([ir] * 3) if i else ir)
            label = root / split / "labels" / f"{name}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            # class 2 = car in MSRS; cx cy w h normalised
            label.write_text("2 0.5 0.5 0.25 0.5\n0 0.1 0.2 0.1 0.2\n" if i == 0 else "")
    return root


def test_msrs_layout_is_detected_and_read(tmp_path):
    root = _msrs(tmp_path / "msrs")
    assert detect_format(root) == "msrs"
    ds = open_dataset(root, split="test")
    assert ds.class_names == ("person", "bicycle", "car") and len(ds) == 2
    s = ds[0]
    assert s.name == "00004N" and s.labels.tolist() == [2, 0]
    np.testing.assert_allclose(s.boxes[0], [12.0, 6.0, 20.0, 18.0])
    # 3-channel R=G=B infrared is read as grey
    assert ds[1].thermal.shape == (H, W) and np.array_equal(ds[1].thermal, _img(11, 1))
    assert len(ds[1].boxes) == 0  # an empty label file: no objects
    both = open_dataset(root, split="train+test")
    assert [r.name for r in both.records] == ["00001D", "00003N", "00004N", "00055D"]
    assert both.group_of("00004N") == "night" and both.group_of("00055D") == "day"
    with pytest.raises(DatasetError, match="split folders test, train: pass split="):
        open_dataset(root)
    visible = open_dataset(root, "msrs", split="test")
    assert len(visible) == 2


def test_yolo_class_lists_and_label_folder(tmp_path):
    root = _msrs(tmp_path / "yolo")
    (root / "classes.txt").write_text("a\nb\nc\n")
    assert detect_format(root) == "yolo"
    assert open_dataset(root, split="train").class_names == ("a", "b", "c")
    (root / "classes.txt").unlink()
    (root / "data.yaml").write_text("names: {0: walker, 1: bike, 2: auto}\n")
    assert open_dataset(root, split="train").class_names == ("walker", "bike", "auto")
    (root / "data.yaml").write_text("names: [x, y]\n")
    with pytest.raises(DatasetError, match=r"00001D\.txt:1: class 2 is not one of the 2"):
        open_dataset(root, "yolo", split="train")
    (root / "data.yaml").unlink()
    with pytest.raises(DatasetError, match="unknown class names"):
        open_dataset(root, "yolo", split="train")
    from ivtuning_ros.data.formats.yolo import load_yolo

    (root / "train" / "labels_visible").mkdir()
    ds = load_yolo(root, "train", preset="msrs", label_dir="labels_visible")
    assert all(len(ds[i].boxes) == 0 for i in range(len(ds)))


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("0 1.2 0.5 0.2 0.2", "lies outside the image"),
        ("7 0.5 0.5 0.2 0.2", "class 7 is not one of the 3"),
        ("0 0.5 0.5 0.2", "expected 'class cx cy w h'"),
        ("0 a 0.5 0.2 0.2", "not numbers"),
    ],
)
def test_yolo_bad_labels_named_or_skipped(tmp_path, line, match):
    root = _msrs(tmp_path / "msrs")
    bad = root / "test" / "labels" / "00055D.txt"
    bad.write_text(line + "\n")
    with pytest.raises(DatasetError, match=f"00055D\\.txt:1: .*{match}"):
        open_dataset(root, split="test")
    ds = open_dataset(root, split="test", skip_bad=True)
    assert len(ds) == 1 and ds.skipped[0][0] == "00055D" and match in ds.skipped[0][1]


def test_yolo_missing_partner_and_unreadable(tmp_path):
    root = _msrs(tmp_path / "msrs")
    (root / "test" / "ir" / "00004N.png").unlink()
    with pytest.raises(DatasetError, match=r"'00004N': no infrared image in .*test/ir"):
        open_dataset(root, split="test")
    _write(root / "test" / "ir" / "00004N.png", _img(0, 1))
    _write(root / "test" / "ir" / "09999N.png", _img(0, 1))  # thermal without visible
    with pytest.raises(DatasetError, match=r"'09999N': no visible image"):
        open_dataset(root, split="test")
    (root / "test" / "ir" / "09999N.png").unlink()
    (root / "test" / "vi" / "00055D.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"unreadable image file .*00055D\.png"):
        open_dataset(root, split="test")
    assert len(open_dataset(root, split="test", skip_bad=True)) == 1


def _voc(path: Path, objects, size=(H, W)) -> None:
    ann = ET.Element("annotation")
    ET.SubElement(ann, "filename").text = path.stem
    sz = ET.SubElement(ann, "size")
    ET.SubElement(sz, "width").text, ET.SubElement(sz, "height").text = str(size[1]), str(size[0])
    for name, box in objects:
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = name
        bb = ET.SubElement(obj, "bndbox")
        for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
            ET.SubElement(bb, k).text = str(v)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(ann).write(path)


def _flir_aligned(root: Path) -> Path:
    for i, pid in enumerate(["FLIR_00002", "FLIR_00010", "FLIR_08864"]):
        _write(root / "JPEGImages" / f"{pid}_PreviewData.jpeg", np.dstack([_img(i, 1)] * 3))
        _write(root / "JPEGImages" / f"{pid}_RGB.jpg", _img(i))
        _voc(root / "Annotations" / f"{pid}_PreviewData.xml", [("car", (3, 4, 12, 20))])
    (root / "align_train.txt").write_text("FLIR_00002_PreviewData\nFLIR_00010_PreviewData\n")
    (root / "align_validation.txt").write_text("FLIR_08864\n")
    return root


def test_flir_aligned_as_published(tmp_path):
    root = _flir_aligned(tmp_path / "align")
    assert detect_format(root) == "flir"
    train = open_dataset(root, split="train")
    assert [r.name for r in train.records] == ["FLIR_00002", "FLIR_00010"]
    assert train.class_names == ("person", "car", "bicycle", "dog")
    s = train[0]
    assert s.labels.tolist() == [1] and s.boxes.tolist() == [[2.0, 3.0, 12.0, 20.0]]
    assert s.thermal.shape == (H, W)
    assert [r.name for r in open_dataset(root, split="validation").records] == ["FLIR_08864"]
    with pytest.raises(DatasetError, match="no split 'nope'"):
        open_dataset(root, split="nope")
    # bad input: an unknown class, a box outside the image, a missing partner
    xml = root / "Annotations" / "FLIR_00010_PreviewData.xml"
    _voc(xml, [("tram", (3, 4, 12, 20))])
    with pytest.raises(DatasetError, match=r"FLIR_00010_PreviewData\.xml: class 'tram'"):
        open_dataset(root, split="train")
    _voc(xml, [("car", (3, 4, 90, 20))])
    with pytest.raises(DatasetError, match=r"FLIR_00010_PreviewData\.xml: box 0 .* outside"):
        open_dataset(root, split="train")
    assert len(open_dataset(root, split="train", skip_bad=True)) == 1
    (root / "JPEGImages" / "FLIR_00002_RGB.jpg").unlink()
    with pytest.raises(DatasetError, match=r"'FLIR_00002': missing visible image"):
        open_dataset(root, split="train")


def test_block_split_keeps_blocks_groups_and_gaps():
    names = [f"{i:05d}{'D' if i < 60 else 'N'}" for i in range(120)]
    group = {n: n[-1] for n in names}.__getitem__
    out = block_split(names, BlockSplit(block=10, val=0.2, test=0.2, gap=1), group)
    everything = [n for p in out.parts.values() for n in p] + list(out.left_out)
    assert sorted(everything) == names and len(set(everything)) == len(names)
    for part in ("val", "test"):  # held-out parts are whole blocks of 10 consecutive names
        idx = sorted(int(n[:5]) for n in out[part])
        assert len(idx) in (20, 30) and all(i % 10 == 0 for i in idx[::10])
        assert {n[-1] for n in out[part]} == {"D", "N"}  # both groups in every part
    # no training name sits next to a held-out one
    held = {int(n[:5]) for p in ("val", "test") for n in out[p]}
    assert all(int(n[:5]) + d not in held for n in out["train"] for d in (-1, 1))
    assert block_split(names, BlockSplit(block=10), group) == block_split(
        list(reversed(names)), BlockSplit(block=10), group
    )
    with pytest.raises(ValueError, match="no val names: 12 names in blocks of 10"):
        block_split(names[:12], BlockSplit(block=10), group)
    with pytest.raises(ValueError, match="must leave training data"):
        BlockSplit(val=0.5, test=0.5)


def test_classes_are_matched_by_name(tmp_path):
    ds = open_dataset(_msrs(tmp_path / "msrs"), split="test")
    cmap = match_classes(ds.class_names, ("person", "car", "bicycle", "dog"), exact=False)
    assert cmap.to_model.tolist() == [0, 2, 1] and cmap.unmatched_model == ("dog",)
    relabeled = Relabeled(ds, cmap)
    assert relabeled[0].labels.tolist() == [1, 0]  # MSRS car (2) is the model's car (1)
    assert relabeled.class_names == ds.class_names  # attributes pass through
    with pytest.raises(ClassMismatch, match=r"class names differ .*'dog'"):
        match_classes(ds.class_names, ("person", "car", "bicycle", "dog"), exact=True)
    with pytest.raises(ClassMismatch, match=r"no class name in common \(model classes \['x'\]"):
        match_classes(ds.class_names, ("x",), exact=False)
    dropped = match_classes(("Person", "tram"), ("person",), exact=False)
    assert dropped.unmatched_data == ("tram",)


def test_real_data_root_option_env_and_expansion(tmp_path, monkeypatch):
    monkeypatch.setenv("IVTUNING_REAL_DATA", str(tmp_path))
    assert real_data_root() == tmp_path and real_data_root("/x") == Path("/x")
    assert expand_path("${IVTUNING_REAL_DATA}/a") == f"{tmp_path}/a"
    assert missing_reason() is None
    monkeypatch.setenv("IVTUNING_REAL_DATA", str(tmp_path / "absent"))
    assert "does not exist" in missing_reason()
    monkeypatch.delenv("NO_SUCH_VAR_HERE", raising=False)
    assert expand_path("${NO_SUCH_VAR_HERE:-fallback}") == "fallback"
    with pytest.raises(ValueError, match="NO_SUCH_VAR_HERE is not set"):
        expand_path("${NO_SUCH_VAR_HERE}")
