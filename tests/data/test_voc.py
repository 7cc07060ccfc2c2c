"""Pascal VOC read back from tiny datasets written in the official layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from downsizenet_hub.data import CorruptFileError, build_dataset
from downsizenet_hub.data.voc import VOC_CLASSES, VOCDataset, read_annotation, write_annotation

from .layouts import write_voc_detection, write_voc_segmentation


def _labels(height: int = 6, width: int = 8) -> np.ndarray:
    labels = np.zeros((height, width), dtype=np.uint8)
    labels[1:4, 2:5] = 15  # person
    labels[0, :] = 255  # border / ignore
    labels[5, 7] = 20  # tvmonitor
    return labels


def test_segmentation_masks_are_exact(tmp_path: Path) -> None:
    first, second = _labels(), np.full((4, 5), 3, dtype=np.uint8)
    write_voc_segmentation(tmp_path, {"2007_000032": first, "2007_000039": second}, image_set="val")
    dataset = build_dataset("voc", "val", task="segmentation", root=tmp_path)
    assert len(dataset) == 2
    image, target = dataset[0]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32
    assert image.shape == (3, 6, 8) and image.min() >= 0.0 and image.max() <= 1.0
    # Flat colour (0, 128, 200): JPEG keeps it within a couple of grey levels.
    expected = torch.tensor([0, 128, 200], dtype=torch.float32).view(3, 1, 1) / 255
    assert (image - expected).abs().max() <= 3 / 255
    assert isinstance(target["mask"], tv_tensors.Mask) and target["mask"].dtype == torch.int64
    assert torch.equal(target["mask"].as_subclass(torch.Tensor), torch.from_numpy(first).long())
    assert set(target) == {"mask"}
    assert torch.equal(dataset[1][1]["mask"].as_subclass(torch.Tensor), torch.full((4, 5), 3))


@pytest.mark.parametrize("level", ["parent", "devkit", "voc"])
def test_root_may_be_any_level_of_the_layout(tmp_path: Path, level: str) -> None:
    base = write_voc_segmentation(tmp_path, {"a": _labels()})
    root = {"parent": tmp_path, "devkit": base.parent, "voc": base}[level]
    assert len(VOCDataset(root, "train")) == 1


def test_detection_boxes_labels_and_difficult(tmp_path: Path) -> None:
    write_voc_detection(
        tmp_path,
        {
            "000005": ((20, 30), [("chair", 1, 2, 10, 12, 0), ("person", 5, 5, 30, 20, 1)]),
            "000007": ((10, 10), []),
        },
    )
    dataset = build_dataset("voc", "train", task="detection", root=tmp_path)  # VOC 2007 default
    image, target = dataset[0]
    assert image.shape == (3, 20, 30)
    boxes = target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes)
    assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY and tuple(boxes.canvas_size) == (
        20,
        30,
    )
    # 1-based inclusive (xmin, ymin, xmax, ymax) -> pixel edges (xmin - 1, ymin - 1, xmax, ymax).
    assert torch.equal(
        boxes.as_subclass(torch.Tensor), torch.tensor([[0.0, 1, 10, 12], [4, 4, 30, 20]])
    )
    assert target["labels"].tolist() == [VOC_CLASSES.index("chair"), VOC_CLASSES.index("person")]
    assert target["iscrowd"].tolist() == [0, 1]
    _, empty = dataset[1]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)


def test_annotation_writer_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    boxes = np.array([[0, 0, 5, 7], [3, 2, 4, 9]])
    write_annotation(path, filename="a.jpg", size=(10, 6), boxes=boxes, names=["cat", "dog"])
    read_boxes, labels, difficult = read_annotation(path, {n: i for i, n in enumerate(VOC_CLASSES)})
    assert torch.equal(read_boxes, torch.from_numpy(boxes).float())
    assert labels.tolist() == [8, 12] and difficult.tolist() == [0, 0]


def test_missing_root_names_the_expected_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"VOCdevkit/VOC2012"):
        build_dataset("voc", "train", task="segmentation", root=tmp_path / "nowhere")


def test_missing_split_file_is_named(tmp_path: Path) -> None:
    write_voc_segmentation(tmp_path, {"a": _labels()}, image_set="train")
    with pytest.raises(FileNotFoundError, match=r"ImageSets/Segmentation/val\.txt"):
        build_dataset("voc", "val", task="segmentation", root=tmp_path)


def test_missing_listed_image_is_named(tmp_path: Path) -> None:
    base = write_voc_segmentation(tmp_path, {"a": _labels(), "b": _labels()})
    (base / "JPEGImages" / "b.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"JPEGImages/b\.jpg"):
        build_dataset("voc", "train", task="segmentation", root=tmp_path)


def test_corrupt_image_stops_with_its_name(tmp_path: Path) -> None:
    base = write_voc_segmentation(tmp_path, {"a": _labels(), "b": _labels()})
    (base / "JPEGImages" / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    dataset = build_dataset("voc", "train", task="segmentation", root=tmp_path)
    dataset[0]
    with pytest.raises(CorruptFileError, match=r"JPEGImages/b\.jpg"):
        dataset[1]


def test_truncated_image_stops_with_its_name(tmp_path: Path) -> None:
    base = write_voc_segmentation(tmp_path, {"a": _labels(60, 80)})
    path = base / "JPEGImages" / "a.jpg"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CorruptFileError, match=r"a\.jpg"):
        build_dataset("voc", "train", task="segmentation", root=tmp_path)[0]


def test_rgb_mask_is_rejected(tmp_path: Path) -> None:
    base = write_voc_segmentation(tmp_path, {"a": _labels()})
    Image.new("RGB", (8, 6), (128, 0, 0)).save(base / "SegmentationClass" / "a.png")
    with pytest.raises(CorruptFileError, match=r"SegmentationClass/a\.png.*mode RGB"):
        build_dataset("voc", "train", task="segmentation", root=tmp_path)[0]


def test_unknown_class_index_is_rejected(tmp_path: Path) -> None:
    labels = _labels()
    labels[2, 2] = 21
    write_voc_segmentation(tmp_path, {"a": labels})
    with pytest.raises(CorruptFileError, match=r"a\.png holds class indices \[21\]"):
        build_dataset("voc", "train", task="segmentation", root=tmp_path)[0]


def test_mask_of_another_size_is_rejected(tmp_path: Path) -> None:
    base = write_voc_segmentation(tmp_path, {"a": _labels()})
    Image.fromarray(np.zeros((5, 8), dtype=np.uint8), mode="P").save(
        base / "SegmentationClass" / "a.png"
    )
    with pytest.raises(CorruptFileError, match=r"a\.png is 8x5 but its image .* is 8x6"):
        build_dataset("voc", "train", task="segmentation", root=tmp_path)[0]


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<annotation><object>", r"Cannot parse VOC annotation file .*x\.xml"),
        (
            "<annotation><object><name>unicorn</name></object></annotation>",
            r"x\.xml, object 0: unknown class 'unicorn'",
        ),
        (
            "<annotation><object><name>cat</name><bndbox><xmin>a</xmin></bndbox></object></annotation>",
            r"x\.xml, object 0: bndbox needs numeric",
        ),
        (
            "<annotation><object><name>cat</name><bndbox><xmin>5</xmin><ymin>1</ymin>"
            "<xmax>2</xmax><ymax>3</ymax></bndbox></object></annotation>",
            r"x\.xml, object 0: box .* has max < min",
        ),
    ],
)
def test_bad_annotations_name_the_file(tmp_path: Path, xml: str, message: str) -> None:
    base = write_voc_detection(tmp_path, {"x": ((10, 10), [("cat", 1, 1, 5, 5, 0)])})
    (base / "Annotations" / "x.xml").write_text(xml)
    with pytest.raises(CorruptFileError, match=message):
        build_dataset("voc", "train", task="detection", root=tmp_path)[0]


def test_masks_and_boxes_need_the_same_ids(tmp_path: Path) -> None:
    write_voc_segmentation(tmp_path, {"a": _labels()}, year="2012")
    write_voc_detection(tmp_path, {"b": ((6, 8), [])}, year="2012")
    with pytest.raises(ValueError, match="list different images"):
        VOCDataset(tmp_path, "train", segmentation=True, detection=True)


def test_empty_image_set_is_an_error(tmp_path: Path) -> None:
    base = write_voc_segmentation(tmp_path, {"a": _labels()})
    (base / "ImageSets" / "Segmentation" / "train.txt").write_text("")
    with pytest.raises(ValueError, match="lists no images"):
        VOCDataset(tmp_path, "train")


def test_voc2007_test_image_set_through_kwargs(tmp_path: Path) -> None:
    write_voc_detection(tmp_path, {"000001": ((8, 8), [("dog", 2, 2, 6, 6, 0)])}, image_set="test")
    dataset = build_dataset("voc", "val", task="detection", root=tmp_path, image_set="test")
    assert dataset[0][1]["labels"].tolist() == [VOC_CLASSES.index("dog")]
