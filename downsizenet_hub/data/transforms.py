"""The one sample format, the transforms that keep it consistent, and batching.

Sample conventions (every dataset of :mod:`downsizenet_hub.data`):

- ``image``: ``tv_tensors.Image`` ``(3, H, W)`` float32 in ``[0, 1]``, RGB.
- ``target["mask"]`` (segmentation): ``tv_tensors.Mask`` ``(H, W)`` int64 class ids, 255 = ignore.
- ``target["boxes"]`` (detection): ``tv_tensors.BoundingBoxes`` ``(N, 4)`` float32, XYXY in
  pixel-edge coordinates (a box covering pixel columns 3..5 has x1 = 3, x2 = 6),
  ``canvas_size = (H, W)``.
- ``target["labels"]``: int64 ``(N,)`` in ``1..num_classes-1`` (0 is background, the torchvision
  detection convention); ``target["iscrowd"]``: int64 ``(N,)``, 1 for boxes an evaluation should
  ignore (COCO crowd regions, VOC "difficult" objects), the key torchmetrics' mAP reads.

Geometry goes through ``torchvision.transforms.v2``, which resizes images bilinearly, masks with
nearest neighbour (class ids never blend) and moves boxes with the image. The pipeline input size
is reached with ``antialias=False`` bilinear, like the paper's first resize to ~300 px; a learned
or classical downsizer then works from there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

Sample = tuple[tv_tensors.Image, dict[str, Any]]
SizeArg = int | tuple[int, int]

#: Fraction of the image area a training crop keeps (before it is resized to ``image_size``).
TRAIN_CROP_SCALE = (0.5, 1.0)
#: Std of the Gaussian pixel noise of the ``noisy`` variant, on images in [0, 1].
NOISE_SIGMA = 0.15
VARIANTS = ("clean", "noisy")


def as_size(image_size: SizeArg | None) -> tuple[int, int] | None:
    """``(H, W)`` from an int (a square) or a pair; None stays None (keep the stored size)."""
    if image_size is None:
        return None
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        size = (image_size, image_size)
    elif (
        isinstance(image_size, Sequence)
        and len(image_size) == 2
        and all(isinstance(side, int) and not isinstance(side, bool) for side in image_size)
    ):
        size = (int(image_size[0]), int(image_size[1]))
    else:
        raise TypeError(f"image_size must be an int or an (H, W) pair of ints, got {image_size!r}.")
    if min(size) < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}.")
    return size


def _box_fields(sample: Any) -> tuple[torch.Tensor, ...]:
    """Per-box tensors that must be dropped together with their box (module level: picklable)."""
    target = sample[1]
    return tuple(target[key] for key in ("labels", "iscrowd") if key in target)


def build_transforms(
    image_size: SizeArg | None, *, train_augment: bool = False, boxes: bool = False
) -> v2.Transform:
    """Geometry from a float image at its stored size to the pipeline input size.

    Eval: a bilinear resize (``antialias=False``) to ``image_size``. Train (``train_augment``): a
    horizontal flip, then a random crop keeping :data:`TRAIN_CROP_SCALE` of the area, resized to
    ``image_size`` the same way. With ``boxes``, boxes are clamped to the canvas and those left
    under one pixel wide or tall are dropped together with their labels.
    """
    size = as_size(image_size)
    steps: list[Callable[..., Any]] = []
    if train_augment:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
        if size is not None:
            steps.append(
                v2.RandomResizedCrop(
                    size,
                    scale=TRAIN_CROP_SCALE,
                    interpolation=v2.InterpolationMode.BILINEAR,
                    antialias=False,
                )
            )
    elif size is not None:
        steps.append(v2.Resize(size, interpolation=v2.InterpolationMode.BILINEAR, antialias=False))
    if boxes:
        steps += [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(labels_getter=_box_fields)]
    return v2.Compose(steps) if steps else v2.Identity()


@dataclass(frozen=True)
class PixelNoise:
    """Gaussian pixel noise, fixed per image: sample ``index`` always gets the same noise.

    Added to the float image at its stored (full) resolution, before any resize, as a sensor would;
    the result is clipped to [0, 1]. ``stream`` separates splits so train and val images with the
    same index get different noise.

    Drawn by torch's generator, seeded per image from ``(seed, stream, index)`` through NumPy's
    SeedSequence (a hash, so neighbouring indices get unrelated streams): about 1.2 ms for a
    300 px image on one core, where NumPy's float32 normals took 5.8 ms (numerics version 2; the
    same draw on any number of threads).
    """

    sigma: float = NOISE_SIGMA
    seed: int = 0
    stream: int = 0

    def __call__(self, image: tv_tensors.Image, index: int) -> tv_tensors.Image:
        state = np.random.SeedSequence([self.seed, self.stream, index]).generate_state(2)
        generator = torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)
        plain = image.as_subclass(torch.Tensor)
        noise = torch.randn(plain.shape, generator=generator, dtype=plain.dtype)
        noisy = plain.add(noise, alpha=self.sigma).clamp_(0.0, 1.0)
        return tv_tensors.Image(noisy)


class SampleDataset(Dataset[Sample]):
    """A raw dataset (uint8 image, target) turned into the sample format.

    Per sample: uint8 -> float32 in [0, 1], then the optional per-image ``noise``, then
    ``transforms`` (see :func:`build_transforms`). ``class_names`` is passed through from ``raw``.
    """

    def __init__(
        self,
        raw: Any,
        transforms: Callable[..., Any],
        noise: PixelNoise | None = None,
    ) -> None:
        self.raw = raw
        self.transforms = transforms
        self.noise = noise
        self.class_names: tuple[str, ...] = tuple(raw.class_names)

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, index: int) -> Sample:
        image, target = self.raw[index]
        image = F.to_dtype(image, torch.float32, scale=True)
        if self.noise is not None:
            image = self.noise(image, index)
        image, target = self.transforms(image, target)
        return image, target


def collate(batch: Sequence[Sample]) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """DataLoader ``collate_fn``: images stacked to ``(B, 3, H, W)``, targets kept as a list.

    All images must share one size; build the dataset with ``image_size`` to guarantee it.
    """
    if len(batch) == 0:
        raise ValueError("collate got an empty batch.")
    shapes = {tuple(image.shape) for image, _ in batch}
    if len(shapes) > 1:
        raise ValueError(
            f"Images in a batch differ in size ({sorted(shapes)}); build the dataset with "
            "image_size=... so that every image is resized to the pipeline input size."
        )
    images = torch.stack([image.as_subclass(torch.Tensor) for image, _ in batch])
    return images, [target for _, target in batch]
