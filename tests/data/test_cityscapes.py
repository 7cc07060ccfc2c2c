"""Cityscapes read back from a tiny dataset in the official leftImg8bit / gtFine layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from downsizenet_hub.data import CorruptFileError, build_dataset, dataset_info
from downsizenet_hub.data.cityscapes import LABEL_TO_TRAIN_ID

from .layouts import write_cityscapes


def test_label_ids_become_the_19_train_ids(tmp_path: Path) -> None:
    # Label ids: 7 road, 8 sidewalk, 26 car, 33 bicycle; 0 unlabeled, 9 parking, 1 ego vehicle.
    label_ids = np.array([[7, 8, 26, 33], [0, 9, 1, 24]], dtype=np.uint8)
    write_cityscapes(tmp_path, "val", {"zurich_000001_000019": label_ids})
    write_cityscapes(tmp_path, "val", {"aachen_000000_000019": np.full((2, 4), 11, np.uint8)})
    dataset = build_dataset("cityscapes", "val", task="segmentation", root=tmp_path)
    assert len(dataset) == 2
    # Sorted by path: aachen first, whatever order the file system lists them in.
    assert torch.equal(dataset[0][1]["mask"].as_subclass(torch.Tensor), torch.full((2, 4), 2))
    image, target = dataset[1]
    assert image.shape == (3, 2, 4)
    expected = torch.tensor([[0, 1, 13, 18], [255, 255, 255, 11]])
    assert torch.equal(target["mask"].as_subclass(torch.Tensor), expected)
    names = dataset_info("cityscapes").class_names
    assert (names[0], names[13], names[18]) == ("road", "car", "bicycle")


def test_lookup_covers_exactly_19_classes() -> None:
    assert sorted(set(LABEL_TO_TRAIN_ID.tolist()) - {255}) == list(range(19))
    assert dataset_info("cityscapes").num_classes == 19


def test_missing_gtfine_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "leftImg8bit" / "train" / "ulm").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"gtFine/train"):
        build_dataset("cityscapes", "train", task="segmentation", root=tmp_path)


def test_missing_label_file_is_named(tmp_path: Path) -> None:
    write_cityscapes(tmp_path, "train", {"ulm_000000_000019": np.zeros((2, 2), np.uint8)})
    (tmp_path / "gtFine/train/ulm/ulm_000000_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"ulm_000000_000019_gtFine_labelIds\.png"):
        build_dataset("cityscapes", "train", task="segmentation", root=tmp_path)


def test_corrupt_label_file_stops_with_its_name(tmp_path: Path) -> None:
    write_cityscapes(tmp_path, "train", {"ulm_000000_000019": np.zeros((2, 2), np.uint8)})
    (tmp_path / "gtFine/train/ulm/ulm_000000_000019_gtFine_labelIds.png").write_bytes(b"garbage")
    dataset = build_dataset("cityscapes", "train", task="segmentation", root=tmp_path)
    with pytest.raises(CorruptFileError, match=r"ulm_000000_000019_gtFine_labelIds\.png"):
        dataset[0]


def test_label_map_of_another_size_is_rejected(tmp_path: Path) -> None:
    write_cityscapes(tmp_path, "train", {"ulm_000000_000019": np.zeros((2, 2), np.uint8)})
    Image.fromarray(np.zeros((3, 2), np.uint8), mode="L").save(
        tmp_path / "gtFine/train/ulm/ulm_000000_000019_gtFine_labelIds.png"
    )
    with pytest.raises(CorruptFileError, match="must match"):
        build_dataset("cityscapes", "train", task="segmentation", root=tmp_path)[0]


def test_detection_is_not_offered() -> None:
    with pytest.raises(ValueError, match="supports task segmentation, not 'detection'"):
        build_dataset("cityscapes", "train", task="detection", root="/nonexistent")
