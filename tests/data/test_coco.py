"""COCO detection read back from a tiny instances JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torchvision import tv_tensors

from downsizenet_hub.data import CorruptFileError, build_dataset, dataset_info

from .layouts import write_coco

CATEGORIES = [
    {"id": 1, "name": "person"},
    {"id": 18, "name": "dog"},
    {"id": 90, "name": "toothbrush"},
]


def _write(root: Path, **overrides: object) -> Path:
    spec: dict = {
        "images": [
            {"id": 42, "file_name": "000000000042.jpg", "height": 20, "width": 30},
            {"id": 7, "file_name": "000000000007.jpg", "height": 10, "width": 12},
        ],
        "annotations": [
            {"id": 1, "image_id": 42, "category_id": 18, "bbox": [2.5, 3, 10, 4.25], "iscrowd": 0},
            {"id": 2, "image_id": 42, "category_id": 90, "bbox": [0, 0, 30, 20], "iscrowd": 1},
            {"id": 3, "image_id": 42, "category_id": 1, "bbox": [5, 6, 1, 2], "iscrowd": 0},
        ],
        "categories": CATEGORIES,
    }
    spec.update(overrides)
    return write_coco(root, "val", **spec)


def test_boxes_labels_and_crowd_are_exact(tmp_path: Path) -> None:
    _write(tmp_path)
    dataset = build_dataset("coco", "val", task="detection", root=tmp_path)
    assert len(dataset) == 2
    assert dataset.class_names == ("background", "person", "dog", "toothbrush")
    image, target = dataset[1]  # image ids ascending: 7, then 42
    assert image.shape == (3, 20, 30)
    boxes = target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes) and tuple(boxes.canvas_size) == (20, 30)
    expected = torch.tensor([[2.5, 3, 12.5, 7.25], [0, 0, 30, 20], [5, 6, 6, 8]])
    assert torch.equal(boxes.as_subclass(torch.Tensor), expected)
    assert target["labels"].tolist() == [2, 3, 1]  # contiguous in category-id order
    assert target["iscrowd"].tolist() == [0, 1, 0]


def test_image_without_annotations_has_empty_targets(tmp_path: Path) -> None:
    _write(tmp_path)
    image, target = build_dataset("coco", "val", task="detection", root=tmp_path)[0]
    assert image.shape == (3, 10, 12)
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)


def test_official_category_count() -> None:
    info = dataset_info("coco")
    assert (
        info.num_classes == 81 and info.class_names[1] == "person" and info.tasks == ("detection",)
    )


def test_missing_annotation_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "val2017").mkdir()
    with pytest.raises(FileNotFoundError, match=r"annotations/instances_val2017\.json"):
        build_dataset("coco", "val", task="detection", root=tmp_path)


def test_missing_image_is_named(tmp_path: Path) -> None:
    _write(tmp_path)
    (tmp_path / "val2017" / "000000000042.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"000000000042\.jpg"):
        build_dataset("coco", "val", task="detection", root=tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "Cannot parse COCO annotation file"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"images": [], "categories": []}), r"missing: annotations"),
    ],
)
def test_malformed_json_is_named(tmp_path: Path, content: str, message: str) -> None:
    annotation_file = _write(tmp_path)
    annotation_file.write_text(content)
    with pytest.raises(CorruptFileError, match=message) as error:
        build_dataset("coco", "val", task="detection", root=tmp_path)
    assert str(annotation_file) in str(error.value)


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        ({"id": 9, "image_id": 42, "category_id": 5, "bbox": [0, 0, 1, 1]}, "category_id 5"),
        ({"id": 9, "image_id": 42, "category_id": 1, "bbox": [0, 0, -1, 1]}, "bbox must be"),
        ({"id": 9, "image_id": 42, "category_id": 1, "bbox": [0, 0, 1]}, "bbox must be"),
    ],
)
def test_bad_annotation_stops_naming_file_and_id(
    tmp_path: Path, annotation: dict, message: str
) -> None:
    _write(tmp_path, annotations=[annotation])
    dataset = build_dataset("coco", "val", task="detection", root=tmp_path)
    with pytest.raises(
        CorruptFileError, match=rf"instances_val2017\.json, annotation id 9: {message}"
    ):
        dataset[1]


def test_explicit_paths_override_the_layout(tmp_path: Path) -> None:
    annotation_file = _write(tmp_path / "somewhere")
    dataset = build_dataset(
        "coco",
        "train",
        task="detection",
        root=tmp_path,
        annotation_file=annotation_file,
        images_dir=tmp_path / "somewhere" / "val2017",
    )
    assert len(dataset) == 2
