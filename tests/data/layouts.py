"""Writers of tiny datasets in the official on-disk layouts, independent of the library's writers.

Images are flat colours, so JPEG keeps them within a grey level or two; labels are exact.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

VOC_XML = """<annotation>
  <folder>VOC{year}</folder>
  <filename>{image_id}.jpg</filename>
  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>
  <segmented>0</segmented>
{objects}</annotation>
"""
VOC_OBJECT = """  <object>
    <name>{name}</name>
    <pose>Left</pose>
    <truncated>0</truncated>
    <difficult>{difficult}</difficult>
    <bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>
  </object>
"""


def flat_image(height: int, width: int, colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (width, height), colour)


def palette_png(path: Path, labels: np.ndarray) -> None:
    """A palette PNG whose pixel values are ``labels`` (colours arbitrary, as in VOC)."""
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(
        [value for index in range(256) for value in (index, 255 - index, 7 * index % 256)]
    )
    image.save(path)


def voc_dir(root: Path, year: str) -> Path:
    return root / "VOCdevkit" / f"VOC{year}"


def write_voc_segmentation(
    root: Path, samples: dict[str, np.ndarray], *, image_set: str = "train", year: str = "2012"
) -> Path:
    """VOC segmentation: ``samples`` maps image ids to (H, W) label maps. Returns the VOC folder."""
    base = voc_dir(root, year)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for number, (image_id, labels) in enumerate(samples.items()):
        height, width = labels.shape
        flat_image(height, width, (40 * number % 256, 128, 200)).save(
            base / "JPEGImages" / f"{image_id}.jpg", quality=95
        )
        palette_png(base / "SegmentationClass" / f"{image_id}.png", labels)
    (base / "ImageSets" / "Segmentation" / f"{image_set}.txt").write_text(
        "".join(f"{image_id}\n" for image_id in samples)
    )
    return base


def write_voc_detection(
    root: Path,
    samples: dict[str, tuple[tuple[int, int], list[tuple[str, int, int, int, int, int]]]],
    *,
    image_set: str = "train",
    year: str = "2007",
) -> Path:
    """VOC detection: image id -> ((H, W), [(name, xmin, ymin, xmax, ymax, difficult), ...])."""
    base = voc_dir(root, year)
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for image_id, ((height, width), objects) in samples.items():
        flat_image(height, width, (10, 200, 30)).save(base / "JPEGImages" / f"{image_id}.jpg")
        text = "".join(
            VOC_OBJECT.format(name=name, xmin=x0, ymin=y0, xmax=x1, ymax=y1, difficult=hard)
            for name, x0, y0, x1, y1, hard in objects
        )
        (base / "Annotations" / f"{image_id}.xml").write_text(
            VOC_XML.format(year=year, image_id=image_id, width=width, height=height, objects=text)
        )
    (base / "ImageSets" / "Main" / f"{image_set}.txt").write_text(
        "".join(f"{image_id}\n" for image_id in samples)
    )
    return base


def write_cityscapes(root: Path, split: str, samples: dict[str, np.ndarray]) -> None:
    """Cityscapes: ``samples`` maps ``<city>_<seq>_<frame>`` stems to (H, W) label-id maps."""
    for stem, label_ids in samples.items():
        city = stem.split("_")[0]
        image_dir = root / "leftImg8bit" / split / city
        label_dir = root / "gtFine" / split / city
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        height, width = label_ids.shape
        flat_image(height, width, (90, 90, 90)).save(image_dir / f"{stem}_leftImg8bit.png")
        Image.fromarray(label_ids.astype(np.uint8), mode="L").save(
            label_dir / f"{stem}_gtFine_labelIds.png"
        )
        # The other gtFine files exist in the real archives; the loader must pick labelIds.
        Image.fromarray(np.zeros_like(label_ids, dtype=np.uint8), mode="L").save(
            label_dir / f"{stem}_gtFine_instanceIds.png"
        )


def write_coco(
    root: Path,
    split: str,
    *,
    images: list[dict],
    annotations: list[dict],
    categories: list[dict],
    year: str = "2017",
) -> Path:
    """COCO: the instances JSON plus one flat image per entry of ``images``. Returns the JSON."""
    image_dir = root / f"{split}{year}"
    image_dir.mkdir(parents=True, exist_ok=True)
    for entry in images:
        flat_image(entry["height"], entry["width"], (200, 50, 50)).save(
            image_dir / entry["file_name"]
        )
    annotation_file = root / "annotations" / f"instances_{split}{year}.json"
    annotation_file.parent.mkdir(parents=True, exist_ok=True)
    annotation_file.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return annotation_file


def fake_fashion_mnist(
    split: str = "train", root: object = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-in for ``load_fashion_mnist``: ten square items (one per class), 255 core, 77 rim,
    20 halo; the test split's items differ (a 77 band across the core)."""
    items = np.zeros((10, 28, 28), dtype=np.uint8)
    items[:, 4:24, 4:24] = 20
    items[:, 6:22, 6:22] = 77
    items[:, 8:20, 8:20] = 255
    if split == "test":
        items[:, 8:12, 8:20] = 77
    return torch.from_numpy(items), torch.arange(10)
