"""Pascal VOC: segmentation (VOC 2012) and detection (VOC 2007), read from a local folder.

On-disk layout (the official tarballs'; ``root`` may be the folder holding ``VOCdevkit``, the
``VOCdevkit`` folder, or the ``VOC<year>`` folder itself)::

    VOCdevkit/VOC2012/
        JPEGImages/<id>.jpg              RGB photographs
        SegmentationClass/<id>.png       palette PNG, pixel value = class index, 255 = border/ignore
        Annotations/<id>.xml             objects: name, difficult, bndbox (1-based inclusive pixels)
        ImageSets/Segmentation/<set>.txt ids for segmentation (train, val, trainval)
        ImageSets/Main/<set>.txt         ids for detection (2007 also has test)

torchvision's ``VOCSegmentation`` / ``VOCDetection`` (``download=False``) index the files; this
module reads them so that errors name the file. Boxes: VOC's 1-based inclusive ``xmin..xmax``
becomes pixel-edge XYXY ``(xmin - 1, ymin - 1, xmax, ymax)``, so the box of an object covering
pixel columns 0..9 is ``x1 = 0, x2 = 10`` (exactly what :func:`write_annotation` writes back).

Errors: a missing folder, split file or listed file stops at construction with a
FileNotFoundError naming it. A corrupt image, a label map that is not single-channel, holds an
unknown class index or does not match its image's size, and an unparsable or incomplete XML file
stop the run when the sample is read, with a :class:`CorruptFileError` naming the file (so does a
box with a coordinate that is not a number). Boxes reaching outside their image are clipped to it
and boxes wholly outside dropped, with one :class:`AnnotationWarning` per file saying so. Nothing
is skipped silently: a benchmark that quietly drops samples is not comparable across runs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets, tv_tensors

from downsizenet_hub.data.files import (
    CorruptFileError,
    check_same_size,
    read_label_map,
    read_rgb,
    require_dir,
    require_file,
    require_files,
)

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
IGNORE_INDEX = 255
_IMAGE_SETS = ("train", "val", "trainval")


def voc_palette() -> list[int]:
    """The 256-colour VOC palette (flat RGB list), so label PNGs look like the official ones."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        value = index
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette += [red, green, blue]
    return palette


def voc_folder(root: str | Path, year: str) -> Path:
    """The ``VOC<year>`` folder under ``root`` (which may also be ``VOCdevkit`` or that folder)."""
    root = Path(root).expanduser().absolute()
    name = f"VOC{year}"
    for candidate in (root / "VOCdevkit" / name, root / name, root):
        if candidate.name == name and candidate.parent.name == "VOCdevkit" and candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"Expected a Pascal VOC {year} folder at {root / 'VOCdevkit' / name} (root should hold "
        f"VOCdevkit/{name}/JPEGImages, ImageSets, ...), but there is no such folder."
    )


def read_annotation(
    path: Path, class_to_label: dict[str, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes ``(N, 4)`` float32 (pixel-edge XYXY), labels and difficult flags ``(N,)`` int64."""
    try:
        root = ElementTree.parse(path).getroot()
    except FileNotFoundError:
        raise FileNotFoundError(f"Annotation file {path} does not exist.") from None
    except ElementTree.ParseError as error:
        raise CorruptFileError(f"Cannot parse VOC annotation file {path}: {error}") from error
    boxes, labels, difficult = [], [], []
    for number, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        if name not in class_to_label:
            raise CorruptFileError(
                f"Annotation file {path}, object {number}: unknown class {name!r}; expected one of "
                f"{sorted(class_to_label)}."
            )
        box = obj.find("bndbox")
        try:
            xmin, ymin, xmax, ymax = (
                float(box.findtext(key, "") if box is not None else "")
                for key in ("xmin", "ymin", "xmax", "ymax")
            )
        except ValueError:
            raise CorruptFileError(
                f"Annotation file {path}, object {number}: bndbox needs numeric xmin, ymin, xmax "
                "and ymax."
            ) from None
        if any(math.isnan(value) for value in (xmin, ymin, xmax, ymax)):
            raise CorruptFileError(
                f"Annotation file {path}, object {number}: box "
                f"({xmin}, {ymin}, {xmax}, {ymax}) has a coordinate that is not a number."
            )
        if xmax < xmin or ymax < ymin:
            raise CorruptFileError(
                f"Annotation file {path}, object {number}: box "
                f"({xmin}, {ymin}, {xmax}, {ymax}) has max < min."
            )
        boxes.append((xmin - 1.0, ymin - 1.0, xmax, ymax))
        labels.append(class_to_label[name])
        difficult.append(int((obj.findtext("difficult") or "0").strip() == "1"))
    return (
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(labels, dtype=torch.int64),
        torch.tensor(difficult, dtype=torch.int64),
    )


class VOCDataset(Dataset[tuple[tv_tensors.Image, dict[str, Any]]]):
    """Raw VOC-layout samples: ``tv_tensors.Image`` ``(3, H, W)`` uint8 and a target dict.

    ``segmentation`` adds ``"mask"``; ``detection`` adds ``"boxes"``, ``"labels"``, ``"iscrowd"``
    (VOC "difficult"). With both, the Segmentation and Main image sets must list the same ids.
    ``class_names`` (index 0 = background) maps XML names to labels and bounds the mask values;
    the built-in scenes benchmark passes its own.
    """

    def __init__(
        self,
        root: str | Path,
        image_set: str = "train",
        *,
        year: str = "2012",
        segmentation: bool = True,
        detection: bool = False,
        class_names: Sequence[str] = VOC_CLASSES,
    ) -> None:
        year = str(year)
        allowed = _IMAGE_SETS + (("test",) if year == "2007" else ())
        if image_set not in allowed:
            raise ValueError(f"VOC {year} image_set must be one of {allowed}, got {image_set!r}.")
        if not (segmentation or detection):
            raise ValueError("VOCDataset needs segmentation=True, detection=True or both.")
        self.voc_dir = voc_folder(root, year)
        self.class_names = tuple(class_names)
        self.class_to_label = {name: label for label, name in enumerate(self.class_names)}
        require_dir(self.voc_dir / "JPEGImages", "the VOC JPEGImages folder")
        # torchvision wants the folder holding VOCdevkit; voc_folder guarantees that shape.
        tv_root = self.voc_dir.parent.parent
        self.masks: list[Path] | None = None
        self.annotations: list[Path] | None = None
        images: list[Path] | None = None
        if segmentation:
            self._require_index("Segmentation", image_set, "SegmentationClass")
            seg = datasets.VOCSegmentation(tv_root, year=year, image_set=image_set, download=False)
            images = [Path(p) for p in seg.images]
            self.masks = [Path(p) for p in seg.masks]
        if detection:
            self._require_index("Main", image_set, "Annotations")
            det = datasets.VOCDetection(tv_root, year=year, image_set=image_set, download=False)
            det_images = [Path(p) for p in det.images]
            if images is not None and det_images != images:
                raise ValueError(
                    f"{self.voc_dir}/ImageSets/Segmentation/{image_set}.txt and "
                    f"ImageSets/Main/{image_set}.txt list different images; a dataset with masks "
                    "and boxes needs the same ids in both."
                )
            images = det_images
            self.annotations = [Path(p) for p in det.annotations]
        assert images is not None
        if not images:
            raise ValueError(f"{self.voc_dir} image set {image_set!r} lists no images.")
        self.images = images
        require_files(self.images, "a VOC image")
        if self.masks is not None:
            require_files(self.masks, "a VOC segmentation mask")
        if self.annotations is not None:
            require_files(self.annotations, "a VOC annotation")

    def _require_index(self, kind: str, image_set: str, target_dir: str) -> None:
        require_file(
            self.voc_dir / "ImageSets" / kind / f"{image_set}.txt",
            f"the VOC {kind} image-set list for {image_set!r}",
        )
        require_dir(self.voc_dir / target_dir, f"the VOC {target_dir} folder")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict[str, Any]]:
        image = read_rgb(self.images[index])
        height, width = image.shape[-2:]
        target: dict[str, Any] = {}
        if self.masks is not None:
            mask_path = self.masks[index]
            label_map = read_label_map(mask_path)
            check_same_size(image, label_map, self.images[index], mask_path)
            unknown = (label_map >= len(self.class_names)) & (label_map != IGNORE_INDEX)
            if unknown.any():
                values = sorted(int(v) for v in np.unique(label_map[unknown]))
                raise CorruptFileError(
                    f"Label map {mask_path} holds class indices {values[:10]}; expected "
                    f"0..{len(self.class_names) - 1} or {IGNORE_INDEX} (ignore)."
                )
            target["mask"] = tv_tensors.Mask(torch.from_numpy(label_map).to(torch.int64))
        if self.annotations is not None:
            boxes, labels, difficult = read_annotation(self.annotations[index], self.class_to_label)
            if (labels == 0).any():
                raise CorruptFileError(
                    f"Annotation file {self.annotations[index]} names the background class "
                    f"{self.class_names[0]!r} as an object."
                )
            kept, boxes = fit_boxes(self.annotations[index], boxes, height, width)
            target["boxes"] = tv_tensors.BoundingBoxes(
                boxes, format=tv_tensors.BoundingBoxFormat.XYXY, canvas_size=(height, width)
            )
            target["labels"] = labels[kept]
            target["iscrowd"] = difficult[kept]
        return image, target


class AnnotationWarning(UserWarning):
    """Boxes of an annotation file were changed to fit its image (said once per file)."""


def fit_boxes(
    path: Path, boxes: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(kept, boxes)``: ``boxes`` ``(N, 4)`` pixel-edge XYXY clipped to the ``height x width``
    image, those left with no area dropped (``kept`` is the boolean mask of the others).

    Boxes reaching outside the image (infinite ones included) are clipped and boxes lying wholly
    outside dropped, with one :class:`AnnotationWarning` per file saying how many, so nothing
    changes silently (Python shows a given warning once per file and process).
    """
    clipped = boxes.clone()
    clipped[:, 0::2] = clipped[:, 0::2].clamp(0, width)
    clipped[:, 1::2] = clipped[:, 1::2].clamp(0, height)
    kept = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    changed = int(((clipped != boxes).any(dim=1) & kept).sum())
    dropped = int((~kept).sum())
    if changed or dropped:
        parts = []
        if changed:
            parts.append(f"clipped {changed} box(es) reaching outside it")
        if dropped:
            parts.append(f"dropped {dropped} box(es) lying wholly outside it")
        warnings.warn(
            f"Annotation file {path}: {' and '.join(parts)} (image {width}x{height} px).",
            AnnotationWarning,
            stacklevel=2,
        )
    return kept, clipped[kept]


def write_label_png(path: Path, label_map: np.ndarray) -> None:
    """Save ``(H, W)`` uint8 class indices as a VOC palette PNG."""
    image = Image.fromarray(label_map.astype(np.uint8), mode="P")
    image.putpalette(voc_palette())
    image.save(path, format="PNG")


def write_annotation(
    path: Path,
    *,
    filename: str,
    size: tuple[int, int],
    boxes: np.ndarray,
    names: Sequence[str],
) -> None:
    """Write a VOC XML annotation: ``boxes`` ``(N, 4)`` integer pixel-edge XYXY, ``size`` (H, W).

    Stored the VOC way (1-based inclusive): ``xmin = x1 + 1, xmax = x2``; :func:`read_annotation`
    inverts it exactly.
    """
    root = ElementTree.Element("annotation")
    ElementTree.SubElement(root, "folder").text = "VOC2012"
    ElementTree.SubElement(root, "filename").text = filename
    size_node = ElementTree.SubElement(root, "size")
    for key, value in (("width", size[1]), ("height", size[0]), ("depth", 3)):
        ElementTree.SubElement(size_node, key).text = str(value)
    ElementTree.SubElement(root, "segmented").text = "1"
    for (x1, y1, x2, y2), name in zip(boxes.tolist(), names, strict=True):
        obj = ElementTree.SubElement(root, "object")
        ElementTree.SubElement(obj, "name").text = name
        ElementTree.SubElement(obj, "pose").text = "Unspecified"
        ElementTree.SubElement(obj, "truncated").text = "0"
        ElementTree.SubElement(obj, "difficult").text = "0"
        box = ElementTree.SubElement(obj, "bndbox")
        for key, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
            ElementTree.SubElement(box, key).text = str(int(value))
    ElementTree.indent(root)
    ElementTree.ElementTree(root).write(path, encoding="utf-8", xml_declaration=False)
