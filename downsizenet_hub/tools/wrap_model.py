"""Put a resizer in front of a torchvision classification, segmentation or detection model.

:func:`with_resizer` returns a module that takes full-size images, resizes them with the resizer
and runs the model on the result, so a published resizer can be tried in an existing pipeline:

* **classification** (any model taking ``(B, C, H, W)``): resize, then the model.
* **segmentation** (torchvision FCN, DeepLabV3, LRASPP, or ``task="segmentation"``): resize, run,
  and bring every output map (``"out"``, ``"aux"``) back to ``output_size`` (default: the input
  size) with bilinear interpolation, so the logits line up with full-size labels.
* **detection** (torchvision Faster/Mask/Keypoint R-CNN, RetinaNet, SSD, SSDlite, FCOS: every model
  with a ``GeneralizedRCNNTransform``): the model's own resize is switched off (its transform
  still normalises and pads to ``size_divisible``), so the backbone sees exactly the resizer's
  output. Training targets given in input coordinates are mapped onto the resized images, and
  predicted boxes, key points and masks are mapped back to input coordinates.

Boxes, key points and masks follow the one coordinate map of the resize target
(:class:`~downsizenet_hub.resizing.target.ResizeTarget`, ``align_corners=False``): input ``x``
maps to ``x / step``, the step being ``w_in / w_out`` with a size and ``1 / s`` with a scale
factor, the step the resizer samples with; predictions come back by the inverse. Images go to
the resizer as the model would get them: detection models take ``[0, 1]`` images and normalise
inside; for classification and segmentation pass ``normalize=(mean, std)`` to feed ``[0, 1]``
images to the resizer and normalised ones to the model.

By default the resizer is frozen (no gradients, kept in eval mode even in ``.train()``), which is
how a published resizer is reused; ``trainable_resizer=True`` trains it with the model.

Why this file is a little over ~400 lines: the three wrappers share one base class (the resizer,
its target and the frozen policy), and the detection wrapper's coordinate mapping only makes sense
next to the torchvision transform it replaces; split, each half would import the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.models.segmentation import FCN, LRASPP, DeepLabV3

from downsizenet_hub.registry import create_resizer
from downsizenet_hub.resizing.limits import check_output_size
from downsizenet_hub.resizing.target import ResizeTarget, ScaleArg, SizeArg, resize_target

Task = Literal["classification", "segmentation", "detection"]
_TASKS = ("classification", "segmentation", "detection")


def with_resizer(
    model: nn.Module,
    resizer: nn.Module | str,
    *,
    size: SizeArg | None = None,
    scale: ScaleArg | None = None,
    task: Task | None = None,
    output_size: tuple[int, int] | None = None,
    normalize: tuple[Sequence[float], Sequence[float]] | None = None,
    trainable_resizer: bool = False,
) -> nn.Module:
    """Wrap ``model`` so that its inputs are resized by ``resizer`` first.

    Args:
        model: a torchvision model (or any model for ``task="classification"``/``"segmentation"``).
        resizer: a resizer module or a reference for
            :func:`~downsizenet_hub.registry.create_resizer`.
        size: output size ``(h, w)`` of the resizer; or
        scale: its scale factor. Exactly one of the two.
        task: found from the model when None (detection if it has a ``GeneralizedRCNNTransform``,
            segmentation for FCN/DeepLabV3/LRASPP, else classification).
        output_size: segmentation only: the size of the returned logits (default: input size).
        normalize: classification/segmentation only: ``(mean, std)`` applied after resizing.
        trainable_resizer: train the resizer with the model instead of keeping it frozen.

    A detection model is changed in place: its ``transform`` is replaced by one that does not
    resize (pass ``copy.deepcopy(model)`` to keep the original).

    Example:
        >>> import torch
        >>> from torchvision.models import resnet18
        >>> from downsizenet_hub import DownsizeNet, with_resizer
        >>> classifier = with_resizer(resnet18(weights=None), DownsizeNet(), size=(96, 96))
        >>> classifier(torch.rand(2, 3, 200, 240)).shape
        torch.Size([2, 1000])
    """
    task = task if task is not None else detect_task(model)
    if task not in _TASKS:
        raise ValueError(f"task must be one of {list(_TASKS)}, got {task!r}.")
    if output_size is not None and task != "segmentation":
        raise ValueError("output_size only applies to segmentation models.")
    if task == "detection":
        if normalize is not None:
            raise ValueError(
                "detection models normalise inside (their transform's image_mean/std); "
                "do not pass normalize."
            )
        return ResizedDetector(
            model, resizer, size=size, scale=scale, trainable_resizer=trainable_resizer
        )
    if task == "segmentation":
        return ResizedSegmenter(
            model,
            resizer,
            size=size,
            scale=scale,
            output_size=output_size,
            normalize=normalize,
            trainable_resizer=trainable_resizer,
        )
    return ResizedClassifier(
        model,
        resizer,
        size=size,
        scale=scale,
        normalize=normalize,
        trainable_resizer=trainable_resizer,
    )


def detect_task(model: nn.Module) -> Task:
    """Which kind of torchvision model this is (classification for anything unknown)."""
    if isinstance(getattr(model, "transform", None), GeneralizedRCNNTransform):
        return "detection"
    if isinstance(model, (FCN, DeepLabV3, LRASPP)):
        return "segmentation"
    return "classification"


class _ResizerInFront(nn.Module):
    """Holds the model and the resizer, the target size, and the frozen/trainable policy."""

    mean: torch.Tensor | None
    std: torch.Tensor | None

    def __init__(
        self,
        model: nn.Module,
        resizer: nn.Module | str,
        size: SizeArg | None,
        scale: ScaleArg | None,
        trainable_resizer: bool,
        normalize: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        self.target: ResizeTarget = resize_target(size, scale, names=("size", "scale"))
        # A fixed output size that one image cannot fit is refused now.
        check_output_size("size", self.target.size, batch=1)
        self.model = model
        self.resizer = create_resizer(resizer)
        self.size = size
        self.scale_factor = scale
        self.trainable_resizer = trainable_resizer
        if not trainable_resizer:
            self.resizer.requires_grad_(False).eval()
        mean, std = (None, None) if normalize is None else _normalisation(normalize)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def train(self, mode: bool = True) -> _ResizerInFront:
        super().train(mode)
        if not self.trainable_resizer:
            self.resizer.eval()
        return self

    def resize(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` images through the resizer (not normalised)."""
        return self.resizer(images, size=self.size, scale_factor=self.scale_factor)

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        if self.mean is None or self.std is None:
            return images
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    def extra_repr(self) -> str:
        target = f"size={self.size}" if self.size is not None else f"scale={self.scale_factor}"
        return f"{target}, trainable_resizer={self.trainable_resizer}"


class ResizedClassifier(_ResizerInFront):
    """``model(normalize(resizer(images)))``; see :func:`with_resizer`."""

    def __init__(
        self,
        model: nn.Module,
        resizer: nn.Module | str,
        *,
        size: SizeArg | None = None,
        scale: ScaleArg | None = None,
        normalize: tuple[Sequence[float], Sequence[float]] | None = None,
        trainable_resizer: bool = False,
    ) -> None:
        super().__init__(model, resizer, size, scale, trainable_resizer, normalize)

    def forward(self, images: torch.Tensor) -> Any:
        return self.model(self._normalise(self.resize(images)))


class ResizedSegmenter(_ResizerInFront):
    """Segmentation on resized images, logits returned at ``output_size`` or the input size."""

    def __init__(
        self,
        model: nn.Module,
        resizer: nn.Module | str,
        *,
        size: SizeArg | None = None,
        scale: ScaleArg | None = None,
        output_size: tuple[int, int] | None = None,
        normalize: tuple[Sequence[float], Sequence[float]] | None = None,
        trainable_resizer: bool = False,
    ) -> None:
        super().__init__(model, resizer, size, scale, trainable_resizer, normalize)
        if output_size is not None:
            if (
                not isinstance(output_size, (tuple, list))
                or len(output_size) != 2
                or not all(isinstance(v, int) and v > 0 for v in output_size)
            ):
                raise ValueError(f"output_size must be (h, w) positive ints, got {output_size!r}.")
            output_size = (int(output_size[0]), int(output_size[1]))
        self.output_size = output_size

    def forward(self, images: torch.Tensor) -> Any:
        """``(B, C, H, W)`` to the model's output, each map ``(B, K, *output_size)``."""
        outputs = self.model(self._normalise(self.resize(images)))
        target = self.output_size or (int(images.shape[-2]), int(images.shape[-1]))
        if isinstance(outputs, torch.Tensor):
            return _upsample(outputs, target)
        if isinstance(outputs, dict):
            return type(outputs)((key, _upsample(value, target)) for key, value in outputs.items())
        raise TypeError(
            f"a segmentation model must return a tensor or a dict of tensors, got "
            f"{type(outputs).__name__}."
        )


class ResizedDetector(_ResizerInFront):
    """A torchvision detector that sees the resizer's output; boxes in input coordinates.

    ``forward(images, targets=None)`` takes what the model takes: a list of ``(C, H, W)`` float
    images in [0, 1] (or a ``(B, C, H, W)`` tensor) and, in training, a list of target dicts with
    ``"boxes"`` (XYXY, input pixels) and optionally ``"masks"`` ``(N, H, W)`` and ``"keypoints"``
    ``(N, K, 3)``. It returns the model's losses in training and its detections in eval, with
    ``"boxes"``, ``"keypoints"`` and ``"masks"`` mapped back to each input image.
    """

    def __init__(
        self,
        model: nn.Module,
        resizer: nn.Module | str,
        *,
        size: SizeArg | None = None,
        scale: ScaleArg | None = None,
        trainable_resizer: bool = False,
    ) -> None:
        super().__init__(model, resizer, size, scale, trainable_resizer)
        transform = getattr(model, "transform", None)
        if not isinstance(transform, GeneralizedRCNNTransform):
            raise TypeError(
                f"{type(model).__name__} has no GeneralizedRCNNTransform to switch off; "
                "with_resizer supports torchvision's detection models."
            )
        if not isinstance(transform, ResizeFreeTransform):
            model.transform = ResizeFreeTransform.replacing(transform)

    def forward(
        self,
        images: Sequence[torch.Tensor] | torch.Tensor,
        targets: Sequence[dict[str, torch.Tensor]] | None = None,
    ) -> Any:
        images = list(images)
        for image in images:
            if image.dim() != 3 or not image.is_floating_point():
                raise ValueError(
                    "detection images must be float (C, H, W) tensors in [0, 1], got "
                    f"{image.dtype} of shape {tuple(image.shape)}."
                )
        if targets is not None and len(targets) != len(images):
            raise ValueError(f"got {len(targets)} targets for {len(images)} images.")
        resized = self._resize_each(images)
        in_sizes = [(int(i.shape[-2]), int(i.shape[-1])) for i in images]
        mapped = None
        if targets is not None:
            mapped = [
                _targets_forward(t, self.target, size)
                for t, size in zip(targets, in_sizes, strict=True)
            ]
        outputs = self.model(resized, mapped)
        if self.model.training:
            return outputs
        return [
            _predictions_back(p, self.target, size)
            for p, size in zip(outputs, in_sizes, strict=True)
        ]

    def _resize_each(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """Resize every image, batching those of the same shape."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(images):
            groups.setdefault(tuple(image.shape), []).append(index)
        resized: list[torch.Tensor | None] = [None] * len(images)
        for indices in groups.values():
            batch = self.resize(torch.stack([images[i] for i in indices]))
            for i, out in zip(indices, batch, strict=True):
                resized[i] = out
        return [image for image in resized if image is not None]


class ResizeFreeTransform(GeneralizedRCNNTransform):
    """A ``GeneralizedRCNNTransform`` that normalises and pads but never resizes.

    Because ``resize`` is the identity, ``postprocess`` maps boxes from the image size to the same
    size (a ratio of exactly 1), and the backbone sees the images as they come in.
    """

    @classmethod
    def replacing(cls, transform: GeneralizedRCNNTransform) -> ResizeFreeTransform:
        """The same normalisation and padding as ``transform``, without its resize."""
        new = cls(
            transform.min_size,
            transform.max_size,
            list(transform.image_mean),
            list(transform.image_std),
            size_divisible=transform.size_divisible,
            fixed_size=transform.fixed_size,
        )
        new.train(transform.training)
        return new

    def resize(
        self, image: torch.Tensor, target: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        return image, target

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(Normalize(mean={self.image_mean}, std={self.image_std}), "
            f"no resize, pad to a multiple of {self.size_divisible})"
        )


def _targets_forward(
    target: dict[str, torch.Tensor], resize: ResizeTarget, in_size: tuple[int, int]
) -> dict[str, torch.Tensor]:
    """Input-coordinate targets to resized-image coordinates (a new dict)."""
    mapped = dict(target)
    if "boxes" in target:
        mapped["boxes"] = resize.map_boxes(target["boxes"], in_size)
    if "keypoints" in target:
        mapped["keypoints"] = resize.map_points(target["keypoints"], in_size)
    if "masks" in target:
        masks = target["masks"]
        resized = F.interpolate(
            masks[:, None].float(), mode="nearest-exact", **resize.resize_kwargs()
        )
        mapped["masks"] = resized[:, 0].to(masks.dtype)
    return mapped


def _predictions_back(
    prediction: dict[str, torch.Tensor], resize: ResizeTarget, in_size: tuple[int, int]
) -> dict[str, torch.Tensor]:
    """Resized-image predictions to input coordinates (a new dict)."""
    mapped = dict(prediction)
    if "boxes" in prediction:
        mapped["boxes"] = resize.unmap_boxes(prediction["boxes"], in_size)
    if "keypoints" in prediction:
        mapped["keypoints"] = resize.unmap_points(prediction["keypoints"], in_size)
    if "masks" in prediction and prediction["masks"].numel():
        mapped["masks"] = _maps_back(prediction["masks"], resize, in_size)
    elif "masks" in prediction:
        mapped["masks"] = prediction["masks"].new_zeros(*prediction["masks"].shape[:-2], *in_size)
    return mapped


def _maps_back(maps: torch.Tensor, resize: ResizeTarget, in_size: tuple[int, int]) -> torch.Tensor:
    """Bilinear maps ``(N, K, h, w)`` on the resized image back to ``in_size``: each input pixel
    centre reads the map where the target's coordinate map puts it (border values repeat, as
    ``F.interpolate`` does). With a size this equals ``F.interpolate(size=in_size)``."""
    ratio_y, ratio_x = resize.ratio(in_size)
    out_h, out_w = maps.shape[-2:]

    def normalised(length: int, ratio: float, out: int) -> torch.Tensor:
        centres = torch.arange(length, dtype=torch.float64, device=maps.device) + 0.5
        return (centres * ratio * 2 / out - 1).to(maps.dtype)

    rows, cols = normalised(in_size[0], ratio_y, out_h), normalised(in_size[1], ratio_x, out_w)
    grid = torch.stack(torch.meshgrid(cols, rows, indexing="xy"), dim=-1)  # (H, W, 2): x, y
    grid = grid.unsqueeze(0).expand(maps.shape[0], -1, -1, -1)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _upsample(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(logits.shape[-2:]) == size:
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def _normalisation(
    normalize: tuple[Sequence[float], Sequence[float]],
) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        mean, std = normalize
        mean_t = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"normalize must be (mean, std) sequences of floats, got {normalize!r}."
        ) from error
    if mean_t.numel() != std_t.numel() or bool((std_t <= 0).any()):
        raise ValueError(
            f"normalize needs mean and std of the same length and std > 0, got {normalize!r}."
        )
    return mean_t, std_t
