"""Datasets by name: their facts, the checks build_dataset makes, batching in a DataLoader."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from downsizenet_hub import paths
from downsizenet_hub.data import DATASETS, build_dataset, collate, dataset_info

from .layouts import write_voc_segmentation


def test_every_dataset_has_info() -> None:
    assert DATASETS == ("scenes", "voc", "cityscapes", "coco")
    scenes = dataset_info("scenes")
    assert scenes.num_classes == 11 and scenes.class_names[0] == "background"
    assert scenes.generated and scenes.image_size == (300, 300) and scenes.ignore_index == 255
    assert "Fashion-MNIST" in scenes.citation
    voc = dataset_info("voc")
    assert (
        voc.num_classes == 21 and voc.tasks == ("segmentation", "detection") and not voc.generated
    )
    for name in DATASETS:
        info = dataset_info(name)
        assert len(info.class_names) == info.num_classes and info.citation
    with pytest.raises(dataclasses.FrozenInstanceError):
        voc.num_classes = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("imagenet", "train"), {"task": "segmentation"}, ValueError, "Unknown dataset 'imagenet'"),
        (("coco", "train"), {"task": "segmentation"}, ValueError, "supports task detection"),
        (("voc", "test"), {"task": "segmentation"}, ValueError, "split must be 'train' or 'val'"),
        (("voc", "train"), {"task": "segmentation", "variant": "blurry"}, ValueError, "variant"),
        (("voc", "train"), {"task": "segmentation", "image_size": "big"}, TypeError, "image_size"),
        (("voc", "train"), {"task": "segmentation", "noise_sigma": -1}, ValueError, "noise_sigma"),
    ],
)
def test_argument_errors(args: tuple, kwargs: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        build_dataset(*args, **kwargs)


def test_unexpected_options_are_rejected(tmp_path: Path) -> None:
    write_voc_segmentation(tmp_path, {"a": np.zeros((4, 4), np.uint8)})
    with pytest.raises(TypeError, match="unexpected options: colour"):
        build_dataset("voc", "train", task="segmentation", root=tmp_path, colour="red")


def test_real_dataset_root_defaults_to_the_data_dir() -> None:
    write_voc_segmentation(paths.data_dir() / "voc", {"a": np.zeros((4, 4), np.uint8)})
    assert len(build_dataset("voc", "train", task="segmentation")) == 1
    with pytest.raises(FileNotFoundError, match=str(paths.data_dir() / "cityscapes")):
        build_dataset("cityscapes", "train", task="segmentation")


def test_dataloader_batches_scenes(fake_items: list[str]) -> None:
    dataset = build_dataset(
        "scenes",
        "train",
        task="detection",
        image_size=(64, 96),
        train_augment=True,
        images=3,
        size=100,
    )
    loader = DataLoader(dataset, batch_size=3, collate_fn=collate)
    images, targets = next(iter(loader))
    assert images.shape == (3, 3, 64, 96) and images.dtype == torch.float32
    assert len(targets) == 3 and all(t["mask"].shape == (64, 96) for t in targets)
    assert all(len(t["boxes"]) == len(t["labels"]) == len(t["iscrowd"]) for t in targets)
