"""Cityscapes semantic segmentation (fine annotations, the 19 train ids), read from a local folder.

On-disk layout (the official ``leftImg8bit_trainvaltest`` and ``gtFine_trainvaltest`` archives,
unpacked side by side under ``root``)::

    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png     RGB photographs
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png      uint8 label ids (0..33)

torchvision's ``Cityscapes`` (``mode="fine"``, ``target_type="semantic"``) indexes the files; the
34 label ids are mapped to the 19 train ids of the benchmark (road = 0 ... bicycle = 18), every
other id (void, ego vehicle, parking, ...) to 255 (ignore). Cityscapes has no background class.

Errors: a missing ``leftImg8bit/<split>`` or ``gtFine/<split>`` folder, or a missing
``*_gtFine_labelIds.png`` for a listed image, stops at construction with a FileNotFoundError naming
it; a corrupt image or label map (or one of a different size) stops the run when read, with a
:class:`CorruptFileError` naming the file. Nothing is skipped silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import datasets, tv_tensors

from downsizenet_hub.data.files import (
    check_same_size,
    read_label_map,
    read_rgb,
    require_dir,
    require_files,
)

IGNORE_INDEX = 255
_IMAGE_SUFFIX = "_leftImg8bit.png"


def _train_id_table() -> tuple[np.ndarray, tuple[str, ...]]:
    """A 256-entry label id -> train id lookup (255 elsewhere) and the 19 class names in order."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    names: dict[int, str] = {}
    for cls in datasets.Cityscapes.classes:
        if 0 <= cls.id < 256 and 0 <= cls.train_id < IGNORE_INDEX:
            table[cls.id] = cls.train_id
            names[cls.train_id] = cls.name
    return table, tuple(names[train_id] for train_id in sorted(names))


LABEL_TO_TRAIN_ID, CITYSCAPES_CLASSES = _train_id_table()


class CityscapesDataset(Dataset[tuple[tv_tensors.Image, dict[str, Any]]]):
    """Raw Cityscapes samples: ``tv_tensors.Image`` ``(3, H, W)`` uint8 and ``{"mask": Mask}``.

    The mask is ``(H, W)`` int64 train ids 0..18, 255 = ignore. Samples are sorted by file name,
    so the order does not depend on the file system.
    """

    class_names = CITYSCAPES_CLASSES

    def __init__(self, root: str | Path, split: str = "train") -> None:
        if split not in ("train", "val"):
            raise ValueError(f"Cityscapes split must be 'train' or 'val', got {split!r}.")
        root = Path(root).expanduser()
        require_dir(root / "leftImg8bit" / split, f"the Cityscapes {split} images (leftImg8bit)")
        require_dir(root / "gtFine" / split, f"the Cityscapes {split} fine labels (gtFine)")
        indexed = datasets.Cityscapes(root, split=split, mode="fine", target_type="semantic")
        pairs = sorted(
            (Path(image), Path(targets[0]))
            for image, targets in zip(indexed.images, indexed.targets, strict=True)
            if image.endswith(_IMAGE_SUFFIX)
        )
        if not pairs:
            raise ValueError(
                f"{root / 'leftImg8bit' / split} holds no <city>/*{_IMAGE_SUFFIX} images."
            )
        self.images = [image for image, _ in pairs]
        self.masks = [mask for _, mask in pairs]
        require_files(self.masks, "a Cityscapes fine label map (*_gtFine_labelIds.png)")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict[str, Any]]:
        image = read_rgb(self.images[index])
        label_ids = read_label_map(self.masks[index])
        check_same_size(image, label_ids, self.images[index], self.masks[index])
        train_ids = LABEL_TO_TRAIN_ID[label_ids]
        return image, {"mask": tv_tensors.Mask(torch.from_numpy(train_ids).to(torch.int64))}
