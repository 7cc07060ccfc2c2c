"""The built-in scenes decoded once, into uint8 arrays every process maps from disk.

A training step on the scenes spent about a third of its time loading samples, most of it
decoding the same JPEG, PNG and XML files again every epoch. The first process that reads a
split of a scenes build decodes it through :class:`.voc.VOCDataset` (so every value is exactly
what the files give) into NumPy arrays beside the build::

    <root>/decoded/<split>_images.npy     (N, 3, H, W) uint8
    <root>/decoded/<split>_masks.npy      (N, H, W) uint8 class indices (255: ignore)
    <root>/decoded/<split>_boxes.npy      (M, 4) float32 pixel-edge XYXY, all images' boxes
    <root>/decoded/<split>_labels.npy     (M,) int64, and _iscrowd.npy (M,) int64
    <root>/decoded/<split>_offsets.npy    (N + 1,) int64: image i owns boxes offsets[i]:offsets[i+1]

Later reads map them (``mmap_mode="r"``): the operating system's page cache holds one copy for
every worker. The folder is written by the package's one folder publish
(:func:`downsizenet_hub.atomic.publish_folder`: a temporary sibling renamed into place), so a
killed decode never looks complete; a scenes build is immutable once complete, so the arrays
never go stale. Only scenes builds are decoded (their size is bounded by their presets); real
datasets are read file by file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from downsizenet_hub.atomic import publish_folder
from downsizenet_hub.data.voc import VOCDataset

DECODED_DIR = "decoded"
_ARRAYS = ("images", "masks", "boxes", "labels", "iscrowd", "offsets")


def _decode(raw: VOCDataset, folder: Path, split: str) -> None:
    first, target = raw[0]
    channels, height, width = first.shape
    count = len(raw)
    images = np.lib.format.open_memmap(
        folder / f"{split}_images.npy", mode="w+", dtype=np.uint8,
        shape=(count, channels, height, width),
    )  # fmt: skip
    masks = np.lib.format.open_memmap(
        folder / f"{split}_masks.npy", mode="w+", dtype=np.uint8, shape=(count, height, width)
    )
    boxes, labels, iscrowd, offsets = [], [], [], [0]
    for index in range(count):
        image, target = raw[index] if index else (first, target)
        if tuple(image.shape) != (channels, height, width):
            raise ValueError(f"scenes image {raw.images[index]} is not {width}x{height}.")
        images[index] = image.numpy()
        masks[index] = target["mask"].numpy().astype(np.uint8)
        boxes.append(target["boxes"].as_subclass(torch.Tensor).numpy())
        labels.append(target["labels"].numpy())
        iscrowd.append(target["iscrowd"].numpy())
        offsets.append(offsets[-1] + len(target["labels"]))
    images.flush()
    masks.flush()
    del images, masks
    np.save(folder / f"{split}_boxes.npy", np.concatenate(boxes).astype(np.float32))
    np.save(folder / f"{split}_labels.npy", np.concatenate(labels).astype(np.int64))
    np.save(folder / f"{split}_iscrowd.npy", np.concatenate(iscrowd).astype(np.int64))
    np.save(folder / f"{split}_offsets.npy", np.asarray(offsets, dtype=np.int64))


def _complete(folder: Path, split: str) -> bool:
    return all((folder / f"{split}_{name}.npy").is_file() for name in _ARRAYS)


def ensure_decoded(raw: VOCDataset, root: Path, split: str) -> Path:
    """The decoded arrays of ``split`` of the scenes build at ``root``, decoding them first if
    no process has (atomically: a temporary sibling folder renamed into place)."""
    target = root / DECODED_DIR / split
    if _complete(target, split):
        return target
    publish_folder(
        target,
        lambda staging: _decode(raw, staging, split),
        done=lambda folder: _complete(folder, split),  # another process finished it first
    )
    return target


class DecodedScenes(Dataset[tuple[tv_tensors.Image, dict[str, Any]]]):
    """The samples of a :class:`.voc.VOCDataset` over a scenes build, served from the decoded
    arrays: the same tensors (values, dtypes, tv_tensor types), without decoding a file."""

    def __init__(self, raw: VOCDataset, root: Path, split: str) -> None:
        if raw.masks is None or raw.annotations is None:
            raise ValueError("decoded scenes serve segmentation and detection targets together.")
        folder = ensure_decoded(raw, root, split)
        self.class_names = raw.class_names
        self.images = np.load(folder / f"{split}_images.npy", mmap_mode="r")
        self.masks = np.load(folder / f"{split}_masks.npy", mmap_mode="r")
        self.boxes = torch.from_numpy(np.load(folder / f"{split}_boxes.npy"))
        self.labels = torch.from_numpy(np.load(folder / f"{split}_labels.npy"))
        self.iscrowd = torch.from_numpy(np.load(folder / f"{split}_iscrowd.npy"))
        self.offsets = np.load(folder / f"{split}_offsets.npy").tolist()
        if len(self.images) != len(raw) or len(self.offsets) != len(raw) + 1:
            raise ValueError(
                f"{folder} does not match its scenes build; delete it to decode again."
            )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict[str, Any]]:
        image = torch.from_numpy(np.array(self.images[index]))
        height, width = image.shape[-2:]
        start, stop = self.offsets[index], self.offsets[index + 1]
        mask = torch.from_numpy(np.array(self.masks[index])).to(torch.int64)
        target = {
            "mask": tv_tensors.Mask(mask),
            "boxes": tv_tensors.BoundingBoxes(
                self.boxes[start:stop].clone(),
                format=tv_tensors.BoundingBoxFormat.XYXY,
                canvas_size=(height, width),
            ),
            "labels": self.labels[start:stop].clone(),
            "iscrowd": self.iscrowd[start:stop].clone(),
        }
        return tv_tensors.Image(image), target
