"""Drawing samples: masks overlaid and boxes labelled, for eyeballing a dataset."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks, make_grid

from downsizenet_hub.atomic import write_atomic_path
from downsizenet_hub.data.registry import build_dataset
from downsizenet_hub.data.voc import IGNORE_INDEX, voc_palette


def _colour(index: int) -> tuple[int, int, int]:
    palette = voc_palette()
    return (palette[3 * index], palette[3 * index + 1], palette[3 * index + 2])


def draw_sample(
    image: torch.Tensor, target: dict[str, Any], class_names: Sequence[str], *, alpha: float = 0.45
) -> torch.Tensor:
    """``image`` (3, H, W) float in [0, 1] with its mask (VOC colours, ignore in cream) and boxes.

    Returns ``(3, H, W)`` uint8.
    """
    canvas = (image.as_subclass(torch.Tensor).clamp(0, 1) * 255).round().to(torch.uint8)
    if "mask" in target:
        mask = target["mask"].as_subclass(torch.Tensor)
        ids = [int(i) for i in torch.unique(mask) if int(i) != 0]
        if ids:
            layers = torch.stack([mask == i for i in ids])
            colours = [_colour(i if i != IGNORE_INDEX else 255) for i in ids]
            canvas = draw_segmentation_masks(canvas, layers, alpha=alpha, colors=colours)
    if "boxes" in target and len(target["boxes"]) > 0:
        labels = target["labels"].tolist()
        canvas = draw_bounding_boxes(
            canvas,
            target["boxes"].as_subclass(torch.Tensor),
            labels=[class_names[label] for label in labels],
            colors=[_colour(label) for label in labels],
            width=1,
        )
    return canvas


def save_sample_grid(
    root: str | Path,
    out: str | Path,
    *,
    count: int = 8,
    split: str = "train",
    variant: str = "clean",
    columns: int = 4,
) -> Path:
    """Draw the first ``count`` samples of the scenes at ``root`` into a PNG grid at ``out``."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}.")
    out = Path(out).expanduser()
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must name a .png file, got {out}.")
    dataset = build_dataset("scenes", split, task="segmentation", root=root, variant=variant)
    class_names = dataset.class_names  # type: ignore[attr-defined]
    tiles = []
    for index in range(min(count, len(dataset))):  # type: ignore[arg-type]
        image, target = dataset[index]
        tiles.append(draw_sample(image, target, class_names))
    grid = make_grid(tiles, nrow=min(columns, len(tiles)), padding=4, pad_value=255)
    picture = Image.fromarray(grid.permute(1, 2, 0).numpy())
    write_atomic_path(out, lambda temporary: picture.save(temporary, format="PNG"))
    return out
