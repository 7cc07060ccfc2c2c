"""COCO object detection (instances JSON), read from a local folder with pycocotools.

On-disk layout (the official 2017 archives unpacked under ``root``; ``annotation_file`` and
``images_dir`` override the two paths for other COCO-format datasets)::

    annotations/instances_<split><year>.json   images, annotations (bbox [x, y, w, h]), categories
    <split><year>/<file_name>                  the images the JSON names

torchvision's ``CocoDetection`` (pycocotools) loads and indexes the JSON; this module reads the
samples so that errors name the file. Category ids (1..90 with gaps in COCO) become contiguous
labels ``1..K`` in increasing id order (0 is background), so ``num_classes = K + 1`` (81 for COCO);
the dataset's ``class_names`` lists them. Boxes ``[x, y, w, h]`` become XYXY
``[x, y, x + w, y + h]``; crowd regions are kept with ``iscrowd = 1``. Images without annotations
give empty targets.

Errors: a missing annotation file or image folder, or an image the JSON names that is not on disk,
stops at construction with a FileNotFoundError naming it; unparsable JSON or JSON without
``images`` / ``annotations`` / ``categories`` raises :class:`CorruptFileError` naming the file; a
corrupt image, a malformed bbox or an unknown category stops the run when that sample is read,
naming the file (and annotation id). Nothing is skipped silently.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision import datasets, tv_tensors

from downsizenet_hub.data.files import (
    CorruptFileError,
    read_rgb,
    require_dir,
    require_file,
    require_files,
)

#: The 80 COCO 2017 detection categories in increasing category-id order (labels 1..80).
COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


def _load_index(annotation_file: Path, images_dir: Path) -> datasets.CocoDetection:
    try:
        with open(annotation_file, encoding="utf-8") as handle:
            content = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorruptFileError(
            f"Cannot parse COCO annotation file {annotation_file}: {error}"
        ) from error
    keys = ("images", "annotations", "categories")
    missing = [key for key in keys if key not in content] if isinstance(content, dict) else keys
    if not isinstance(content, dict) or missing:
        raise CorruptFileError(
            f"COCO annotation file {annotation_file} must be a JSON object with 'images', "
            f"'annotations' and 'categories' lists (missing: {', '.join(missing)})."
        )
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
            return datasets.CocoDetection(images_dir, str(annotation_file))
    except (KeyError, TypeError, AssertionError) as error:
        raise CorruptFileError(
            f"COCO annotation file {annotation_file} is malformed: {error!r}"
        ) from error


class CocoDataset(Dataset[tuple[tv_tensors.Image, dict[str, Any]]]):
    """Raw COCO samples: ``tv_tensors.Image`` ``(3, H, W)`` uint8 and boxes, labels, iscrowd.

    Samples are in increasing image-id order; ``image_ids[i]`` is sample ``i``'s COCO id.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        year: str = "2017",
        annotation_file: str | Path | None = None,
        images_dir: str | Path | None = None,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"COCO split must be 'train' or 'val', got {split!r}.")
        root = Path(root).expanduser()
        self.annotation_file = Path(
            annotation_file or root / "annotations" / f"instances_{split}{year}.json"
        )
        self.images_dir = Path(images_dir or root / f"{split}{year}")
        require_file(self.annotation_file, f"the COCO {split} instances annotation file")
        require_dir(self.images_dir, f"the COCO {split} image folder")
        indexed = _load_index(self.annotation_file, self.images_dir)
        self.coco = indexed.coco
        self.image_ids: list[int] = list(indexed.ids)
        if not self.image_ids:
            raise ValueError(f"COCO annotation file {self.annotation_file} lists no images.")
        categories = sorted(self.coco.cats.values(), key=lambda category: category["id"])
        self.category_to_label = {cat["id"]: label for label, cat in enumerate(categories, 1)}
        self.class_names = ("background", *(str(cat["name"]) for cat in categories))
        self.images = [
            self.images_dir / self.coco.imgs[image_id]["file_name"] for image_id in self.image_ids
        ]
        require_files(self.images, f"an image listed in {self.annotation_file}")

    def __len__(self) -> int:
        return len(self.image_ids)

    def _box(self, annotation: dict[str, Any]) -> list[float]:
        bbox = annotation.get("bbox")
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, int | float) for v in bbox)
            or bbox[2] < 0
            or bbox[3] < 0
        ):
            raise CorruptFileError(
                f"COCO annotation file {self.annotation_file}, annotation id "
                f"{annotation.get('id')}: bbox must be [x, y, w, h] with w, h >= 0, got {bbox!r}."
            )
        x, y, w, h = (float(v) for v in bbox)
        return [x, y, x + w, y + h]

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict[str, Any]]:
        image = read_rgb(self.images[index])
        annotations = self.coco.loadAnns(self.coco.getAnnIds(imgIds=self.image_ids[index]))
        boxes, labels, crowd = [], [], []
        for annotation in annotations:
            category = annotation.get("category_id")
            if category not in self.category_to_label:
                raise CorruptFileError(
                    f"COCO annotation file {self.annotation_file}, annotation id "
                    f"{annotation.get('id')}: category_id {category!r} is not in 'categories'."
                )
            boxes.append(self._box(annotation))
            labels.append(self.category_to_label[category])
            crowd.append(int(annotation.get("iscrowd", 0)))
        target = {
            "boxes": tv_tensors.BoundingBoxes(
                torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                format=tv_tensors.BoundingBoxFormat.XYXY,
                canvas_size=tuple(image.shape[-2:]),
            ),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "iscrowd": torch.tensor(crowd, dtype=torch.int64),
        }
        return image, target
