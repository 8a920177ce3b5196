"""Tiny fixtures written in each real RGB-T layout (with cv2, ElementTree and json, not
with our own writer) and read back through open_dataset; the error cases."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from ivtuning_ros.data.dataset import detect_format, open_dataset
from ivtuning_ros.data.formats.common import DatasetError

H, W = 24, 32


def _rgb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _gray(seed: int, dtype=np.uint8, hi=256) -> np.ndarray:
    return np.random.default_rng(seed + 100).integers(0, hi, (H, W)).astype(dtype)


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def _voc_xml(path: Path, objects, size=(H, W)) -> None:
    ann = ET.Element("annotation")
    sz = ET.SubElement(ann, "size")
    ET.SubElement(sz, "width").text = str(size[1])
    ET.SubElement(sz, "height").text = str(size[0])
    ET.SubElement(sz, "depth").text = "3"
    for name, (x0, y0, x1, y1) in objects:
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = name
        bb = ET.SubElement(obj, "bndbox")
        for k, v in zip(("xmin", "ymin", "xmax", "ymax"), (x0, y0, x1, y1), strict=True):
            ET.SubElement(bb, k).text = str(v)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(ann).write(path)


@pytest.fixture
def llvip(tmp_path):
    root = tmp_path / "LLVIP"
    for split, names in (("train", ["010001", "010002"]), ("test", ["190001"])):
        for i, n in enumerate(names):
            _write_rgb(root / "visible" / split / f"{n}.png", _rgb(i))
            th = np.repeat(_gray(i)[..., None], 3, axis=2)  # LLVIP stores IR as 3 channels
            _write(root / "infrared" / split / f"{n}.png", th)
            _voc_xml(root / "Annotations" / f"{n}.xml", [("person", (3, 4, 10, 20))])
    return root


def test_llvip(llvip):
    assert detect_format(llvip) == "voc"
    ds = open_dataset(llvip, "llvip", split="train")
    assert len(ds) == 2 and ds.tasks == ("detection",) and ds.class_names == ("person",)
    s = ds[0]
    assert s.name == "010001"
    assert np.array_equal(s.rgb, _rgb(0))
    assert s.thermal.dtype == np.float32 and np.array_equal(s.thermal, _gray(0))
    # VOC 1-based inclusive corners -> 0-based continuous xyxy
    assert s.boxes.tolist() == [[2.0, 3.0, 10.0, 20.0]] and s.labels.tolist() == [0]
    assert len(open_dataset(llvip, split="test")) == 1
    with pytest.raises(DatasetError, match="split folders test, train: pass split="):
        open_dataset(llvip)


def test_llvip_missing_annotation_and_unknown_class(llvip):
    (llvip / "Annotations" / "010002.xml").unlink()
    with pytest.raises(DatasetError, match=r"010002\.xml"):
        open_dataset(llvip, "llvip", split="train")
    ds = open_dataset(llvip, "llvip", split="train", skip_bad=True)
    assert len(ds) == 1 and ds.num_skipped == 1 and "010002.xml" in ds.skipped[0][1]
    _voc_xml(llvip / "Annotations" / "010002.xml", [("cat", (1, 1, 5, 5))])
    with pytest.raises(DatasetError, match="'cat'"):
        open_dataset(llvip, "llvip", split="train")


def test_m3fd_with_list_split(tmp_path):
    root = tmp_path / "M3FD"
    objs = {"00001": [("People", (1, 1, 8, 20)), ("Lamp", (20, 2, 24, 10))],
            "00002": [("Car", (5, 5, 30, 22))], "00003": []}  # fmt: skip
    for i, (n, o) in enumerate(objs.items()):
        _write_rgb(root / "Vis" / f"{n}.png", _rgb(i))
        _write(root / "Ir" / f"{n}.png", _gray(i))
        _voc_xml(root / "Annotation" / f"{n}.xml", o)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("00001\n00003\n")
    ds = open_dataset(root, split="train")  # auto: names fit M3FD, so its class order
    assert ds.class_names == ("People", "Car", "Bus", "Motorcycle", "Lamp", "Truck")
    assert [s.name for s in ds] == ["00001", "00003"]
    assert ds[0].labels.tolist() == [0, 4] and len(ds[1].boxes) == 0
    assert len(open_dataset(root, "m3fd")) == 3


def test_pair_of_different_sizes_is_refused_or_counted(llvip):
    _write(llvip / "infrared" / "train" / "010002.png", np.zeros((H + 2, W), np.uint8))
    with pytest.raises(DatasetError, match=r"010002\.png.*differ|is 32x24 but thermal"):
        open_dataset(llvip, "llvip", split="train")
    ds = open_dataset(llvip, "llvip", split="train", skip_bad=True)
    assert len(ds) == 1 and ds.num_skipped == 1
    assert "infrared" in ds.skipped[0][1] and "32x26" in ds.skipped[0][1]


def test_unreadable_image_is_named(llvip):
    bad = llvip / "visible" / "train" / "010001.png"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(DatasetError, match=r"unreadable image file .*010001\.png"):
        open_dataset(llvip, "llvip", split="train")
    ds = open_dataset(llvip, "llvip", split="train", skip_bad=True)
    assert [s.name for s in ds] == ["010002"] and ds.skipped[0][0] == "010001"


def _coco(root: Path, images: list[dict], anns: list[dict]) -> Path:
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"},
                          {"id": 2, "name": "bicycle"}]}  # fmt: skip
    path = root / "annotations" / "train.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_flir_aligned_coco(tmp_path):
    root = tmp_path / "FLIR"
    _write_rgb(root / "JPEGImages" / "FLIR_00001_RGB.jpg", _rgb(0))
    _write(root / "JPEGImages" / "FLIR_00001_PreviewData.jpeg", _gray(0))
    th16 = _gray(1, np.uint16, 65536)
    _write_rgb(root / "rgb" / "b.png", _rgb(1))
    _write(root / "thermal" / "b.png", th16)
    _coco(root, [
        {"id": 1, "file_name": "JPEGImages/FLIR_00001_PreviewData.jpeg", "height": H, "width": W},
        {"id": 2, "file_name": "rgb/b.png", "thermal_file_name": "thermal/b.png"},
    ], [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": [2, 3, 10, 5], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [0, 0, 4, 4], "iscrowd": 1},
        {"id": 3, "image_id": 2, "category_id": 2, "bbox": [26, 18, 10, 10]},
    ])  # fmt: skip
    assert detect_format(root) == "coco"
    ds = open_dataset(root, "flir", split="train")
    assert ds.class_names == ("person", "bicycle", "car")  # ordered by category id
    a, b = ds[0], ds[1]
    assert a.name == "FLIR_00001_PreviewData" and a.rgb.shape == (H, W, 3)
    assert a.boxes.tolist() == [[2, 3, 12, 8]] and a.labels.tolist() == [2]  # crowd left out
    assert b.thermal.max() > 255 and np.array_equal(b.thermal, th16.astype(np.float32))
    assert b.boxes.tolist() == [[26, 18, 32, 24]]  # overhang clipped to the image
    assert ds.clipped_boxes == 1


def test_coco_missing_file_is_named(tmp_path):
    root = tmp_path / "c"
    _write_rgb(root / "rgb" / "a.png", _rgb(0))
    _write(root / "thermal" / "a.png", _gray(0))
    _write_rgb(root / "rgb" / "b.png", _rgb(1))
    _coco(root, [
        {"id": 1, "file_name": "rgb/a.png", "thermal_file_name": "thermal/a.png"},
        {"id": 2, "file_name": "rgb/b.png", "thermal_file_name": "thermal/b.png"},
    ], [])  # fmt: skip
    with pytest.raises(DatasetError, match=r"thermal image 'thermal/b\.png' does not exist"):
        open_dataset(root)
    ds = open_dataset(root, skip_bad=True)
    assert len(ds) == 1 and ds.skipped[0][0] == "b"
    with pytest.raises(DatasetError, match="split 'val'"):
        open_dataset(root, split="val")


def test_box_outside_the_image_names_the_file(tmp_path):
    root = tmp_path / "c"
    _write_rgb(root / "rgb" / "a.png", _rgb(0))
    _write(root / "thermal" / "a.png", _gray(0))
    _coco(root, [{"id": 1, "file_name": "rgb/a.png", "thermal_file_name": "thermal/a.png"}],
          [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [30, 20, 10, 10]}])  # fmt: skip
    with pytest.raises(DatasetError, match=r"train\.json: box 0 .* outside the 32x24 image a\.png"):
        open_dataset(root)
    assert len(open_dataset(root, skip_bad=True)) == 0


def test_mfnet_four_channel(tmp_path):
    root = tmp_path / "MFNet"
    for i, n in enumerate(["00001D", "00002N"]):
        bgrt = np.dstack([cv2.cvtColor(_rgb(i), cv2.COLOR_RGB2BGR), _gray(i)])
        _write(root / "images" / f"{n}.png", bgrt)
        _write(root / "labels" / f"{n}.png", (_gray(i) % 9).astype(np.uint8))
    (root / "train.txt").write_text("00002N\n")
    assert detect_format(root) == "mfnet"  # images/ + published split lists
    ds = open_dataset(root, "mfnet", split="train")
    assert ds.tasks == ("segmentation",) and len(ds.class_names) == 9
    assert ds.class_names[0] == "unlabeled"
    s = ds[0]
    assert s.name == "00002N" and np.array_equal(s.rgb, _rgb(1))
    assert np.array_equal(s.thermal, _gray(1)) and np.array_equal(s.mask, _gray(1) % 9)
    assert len(open_dataset(root, "mfnet")) == 2
    # a stray rgb/ folder without thermal/ beside images/: errors name the folder read
    _write_rgb(root / "rgb" / "00001D.png", _rgb(0))
    (root / "val.txt").write_text("00003X\n")
    with pytest.raises(DatasetError, match=r"00003X.: no image in .*MFNet/images"):
        open_dataset(root, "mfnet", split="val")


def test_mfnet_separate_images_and_bad_labels(tmp_path):
    root = tmp_path / "mf"
    _write_rgb(root / "rgb" / "a.png", _rgb(0))
    _write(root / "thermal" / "a.png", _gray(0))
    _write(root / "labels" / "a.png", np.full((H, W), 12, np.uint8))  # id 12 of 9 classes
    ds = open_dataset(root, "mfnet")
    with pytest.raises(DatasetError, match=r"a\.png: class id 12"):
        ds[0]
    _write(root / "labels" / "a.png", np.dstack([np.zeros((H, W), np.uint8)] * 2 + [_gray(0)]))
    with pytest.raises(DatasetError, match="colour channels"):
        open_dataset(root, "mfnet")[0]
    with pytest.raises(DatasetError, match=r"classes\.txt"):
        open_dataset(root)  # generic layout needs class names
    (root / "classes.txt").write_text("a\nb\nc\n")
    _write(root / "labels" / "a.png", np.full((H, W), 2, np.uint8))
    assert open_dataset(root).class_names == ("a", "b", "c")


def test_pst900(tmp_path):
    root = tmp_path / "PST900"
    for split in ("train", "test"):
        _write_rgb(root / split / "rgb" / "32_bag.png", _rgb(3))
        _write(root / split / "thermal" / "32_bag.png", _gray(3))
        _write(root / split / "labels" / "32_bag.png", np.full((H, W), 4, np.uint8))
    ds = open_dataset(root, "pst900", split="test")
    assert ds.class_names[4] == "survivor" and (ds[0].mask == 4).all()
    assert detect_format(root) == "pst900"  # train/ + test/ of rgb, thermal, labels
    with pytest.raises(DatasetError, match="split folders test, train"):
        open_dataset(root, "pst900")


def test_vt5000_and_vt821(tmp_path):
    vt5000 = tmp_path / "VT5000"
    for split in ("Train", "Test"):
        _write_rgb(vt5000 / split / "RGB" / "1.jpg", _rgb(0))
        _write(vt5000 / split / "T" / "1.jpg", _gray(0))
        _write(vt5000 / split / "GT" / "1.png", np.where(_gray(0) > 127, 255, 0).astype(np.uint8))
    assert detect_format(vt5000) == "saliency"
    ds = open_dataset(vt5000, "vt5000", split="Train")
    s = ds[0]
    assert ds.tasks == ("saliency",) and s.saliency.dtype == np.float32
    assert set(np.unique(s.saliency)) == {0.0, 1.0}
    assert np.array_equal(s.saliency > 0.5, _gray(0) > 127)
    with pytest.raises(DatasetError, match="split folders Test, Train: pass split="):
        open_dataset(vt5000, "vt5000")
    vt821 = tmp_path / "VT821"
    _write_rgb(vt821 / "RGB" / "9.png", _rgb(1))
    _write(vt821 / "T" / "9.png", _gray(1))
    (vt821 / "GT").mkdir()
    with pytest.raises(DatasetError, match="no ground truth"):
        open_dataset(vt821)
    assert open_dataset(vt821, skip_bad=True).num_skipped == 1  # all bad: empty, counted
    _write(vt821 / "GT" / "9.png", np.zeros((H, W), np.uint8))
    assert len(open_dataset(vt821, "vt821")) == 1


def test_unknown_layout_and_format(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DatasetError, match=r"cannot tell the format.*stuff"):
        open_dataset(tmp_path)
    with pytest.raises(ValueError, match="unknown data set format 'kitti'"):
        open_dataset(tmp_path, "kitti")
    with pytest.raises(FileNotFoundError):
        open_dataset(tmp_path / "nope")


def test_thermal_jpeg_float_tiff_and_false_colour(tmp_path):
    from ivtuning_ros.data.formats.common import read_thermal

    smooth = cv2.GaussianBlur(_gray(5), (0, 0), 2)
    jpg = tmp_path / "ir.jpg"
    assert cv2.imwrite(str(jpg), np.dstack([smooth] * 3), [cv2.IMWRITE_JPEG_QUALITY, 95])
    t = read_thermal(jpg)
    assert t.shape == (H, W) and np.abs(t - smooth).mean() < 3
    celsius = (np.random.default_rng(0).random((H, W)) * 50 - 10).astype(np.float32)
    tiff = tmp_path / "radiometric.tiff"
    assert cv2.imwrite(str(tiff), celsius)
    assert np.array_equal(read_thermal(tiff), celsius)  # degrees C stay degrees C
    coloured = tmp_path / "iron.png"
    assert cv2.imwrite(str(coloured), cv2.applyColorMap(smooth, cv2.COLORMAP_INFERNO))
    with pytest.raises(DatasetError, match=r"iron\.png: thermal image is in colour"):
        read_thermal(coloured)
