"""A torchvision ``transforms.v2`` transform that resizes with a frozen (learned) resizer.

:class:`LearnedResize` resizes images with the resizer and, in the same call, everything that
lives on those images by the very same geometry: masks with nearest neighbour, bounding boxes and
key points by the coordinate map of the resize target.

Geometry: the one coordinate map of :class:`~downsizenet_hub.resizing.target.ResizeTarget`
(``F.interpolate(align_corners=False)``): a continuous coordinate ``x`` in input pixels (pixel
``i`` spans ``[i, i + 1]``) lands at ``x / step`` in the output, where the step is ``w_in / w_out``
with a size and ``1 / scale_factor`` with a scale factor (the output then has ``floor(w_in * s)``
pixels), exactly the step the resizer samples with. With a size this is what
``transforms.v2.Resize`` does to boxes. Masks use
``"nearest-exact"`` by default (each output pixel takes the label under its centre, the same
half-pixel convention as the image); ``mask_interpolation="nearest"`` gives torchvision's own
(legacy, shifted by half a pixel) choice.
"""

from __future__ import annotations

from typing import Any, Literal

import PIL.Image
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms.v2 import Transform, query_size
from torchvision.transforms.v2 import functional as TF

from downsizenet_hub.registry import create_resizer
from downsizenet_hub.resizing.limits import check_output_size
from downsizenet_hub.resizing.target import ResizeTarget, ScaleArg, SizeArg, resize_target
from downsizenet_hub.tools.channels import resize_any_channels

MaskInterpolation = Literal["nearest-exact", "nearest"]
_PIL_MODES = ("L", "LA", "RGB", "RGBA")


class LearnedResize(Transform):
    """Resize images with ``resizer`` frozen; masks, boxes and key points follow.

    Args:
        resizer: a resizer module or a reference for
            :func:`~downsizenet_hub.registry.create_resizer`.
            It is put in eval mode with gradients off, and runs under ``torch.no_grad``.
        size: output ``(h, w)`` (an int means square); or
        scale_factor: output ``floor(H * s) x floor(W * s)``. Exactly one of the two.
        mask_interpolation: ``"nearest-exact"`` (default) or ``"nearest"``, see the module doc.

    Inputs: ``tv_tensors.Image`` / ``Video`` / plain tensors ``(..., C, H, W)``, uint8 (0..255)
    or float (0..1), any number of leading batch dimensions; PIL images; ``tv_tensors.Mask``
    ``(..., H, W)`` of any dtype; ``tv_tensors.BoundingBoxes`` (axis-aligned formats) and
    ``tv_tensors.KeyPoints``. Outputs keep their type and dtype (uint8 is rounded and clamped).
    1-channel images through a 3-channel learned resizer are handled as in
    :mod:`downsizenet_hub.tools.channels`. The transform moves with ``.to(device)``; images must
    be on the resizer's device (CPU in DataLoader workers, or the GPU for batches already there).

    Example:
        >>> import torch
        >>> from torchvision import tv_tensors
        >>> from downsizenet_hub import DownsizeNet
        >>> resize = LearnedResize(DownsizeNet(), size=(160, 100))
        >>> image = tv_tensors.Image(torch.randint(0, 256, (3, 320, 400), dtype=torch.uint8))
        >>> boxes = tv_tensors.BoundingBoxes(
        ...     [[40.0, 30.0, 200.0, 150.0]], format="XYXY", canvas_size=(320, 400))
        >>> mask = tv_tensors.Mask(torch.zeros(320, 400, dtype=torch.uint8))
        >>> out_image, out_boxes, out_mask = resize(image, boxes, mask)
        >>> out_image.shape, out_image.dtype, out_mask.shape
        (torch.Size([3, 160, 100]), torch.uint8, torch.Size([160, 100]))
        >>> out_boxes.tolist(), out_boxes.canvas_size
        ([[10.0, 15.0, 50.0, 75.0]], (160, 100))
    """

    _transformed_types = (
        tv_tensors.Image,
        tv_tensors.Video,
        tv_tensors.Mask,
        tv_tensors.BoundingBoxes,
        tv_tensors.KeyPoints,
        PIL.Image.Image,
        TF.is_pure_tensor,
    )

    def __init__(
        self,
        resizer: nn.Module | str,
        size: SizeArg | None = None,
        scale_factor: ScaleArg | None = None,
        *,
        mask_interpolation: MaskInterpolation = "nearest-exact",
    ) -> None:
        super().__init__()
        # Checked now rather than in a DataLoader worker.
        self.target: ResizeTarget = resize_target(size, scale_factor)
        if mask_interpolation not in ("nearest-exact", "nearest"):
            raise ValueError(
                "mask_interpolation must be 'nearest-exact' or 'nearest', "
                f"got {mask_interpolation!r}."
            )
        # A fixed output size that one image cannot fit is refused now.
        check_output_size("size", self.target.size, batch=1)
        self.resizer = create_resizer(resizer).eval().requires_grad_(False)
        self.size = size
        self.scale_factor = scale_factor
        self.mask_interpolation = mask_interpolation

    def train(self, mode: bool = True) -> LearnedResize:
        """Keep the resizer frozen in eval mode whatever mode the transform is set to."""
        super().train(mode)
        self.resizer.eval()
        return self

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        in_size = tuple(query_size(flat_inputs))
        return {"in_size": in_size, "out_size": self.target.output_size(in_size)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            resized = self._resize_mask(inpt.as_subclass(torch.Tensor), params["out_size"])
            return tv_tensors.wrap(resized, like=inpt)
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            return self._map_boxes(inpt, params["in_size"], params["out_size"])
        if isinstance(inpt, tv_tensors.KeyPoints):
            points = self.target.map_points(inpt.as_subclass(torch.Tensor), params["in_size"])
            return tv_tensors.wrap(points, like=inpt, canvas_size=params["out_size"])
        if isinstance(inpt, PIL.Image.Image):
            if inpt.mode not in _PIL_MODES:
                raise ValueError(
                    f"PIL images must be in mode {'/'.join(_PIL_MODES)}, got {inpt.mode!r}; "
                    "convert it first, e.g. image.convert('RGB')."
                )
            alpha = inpt.mode in ("LA", "RGBA")
            resized = self.resize_images(TF.pil_to_tensor(inpt), alpha=alpha)
            return TF.to_pil_image(resized, mode=inpt.mode)
        resized = self.resize_images(inpt.as_subclass(torch.Tensor))
        return (
            tv_tensors.wrap(resized, like=inpt)
            if isinstance(inpt, tv_tensors.TVTensor)
            else resized
        )

    def resize_images(self, images: torch.Tensor, *, alpha: bool = False) -> torch.Tensor:
        """Resize a plain tensor ``(..., C, H, W)``, uint8 or float, keeping shape and dtype.

        ``alpha``: the last channel is alpha (see :mod:`downsizenet_hub.tools.channels`); PIL
        ``RGBA`` and ``LA`` images are resized that way.
        """
        if images.dim() < 3:
            raise ValueError(f"images must have shape (..., C, H, W), got {tuple(images.shape)}.")
        if images.dtype == torch.bool or images.is_complex():
            raise TypeError(f"images must be uint8 or floating point, got {images.dtype}.")
        self._check_device(images)
        leading, (channels, height, width) = images.shape[:-3], images.shape[-3:]
        batch = images.reshape(-1, channels, height, width)
        work_dtype = _work_dtype(self.resizer, images)
        batch = batch.to(work_dtype)
        if not images.is_floating_point():
            batch = batch / _max_value(images.dtype)
        with torch.no_grad():
            out = resize_any_channels(
                self.resizer, batch, size=self.size, scale_factor=self.scale_factor, alpha=alpha
            )
        if not images.is_floating_point():
            top = _max_value(images.dtype)
            out = (out * top).round_().clamp_(0, top)
        return out.to(images.dtype).reshape(*leading, channels, *out.shape[-2:])

    def _resize_mask(self, mask: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        leading, (height, width) = mask.shape[:-2], mask.shape[-2:]
        flat = mask.reshape(1, -1, height, width)
        # Nearest interpolation needs a float (or uint8) tensor; labels up to 2**24 stay exact.
        work = flat if flat.dtype in (torch.uint8, torch.float32, torch.float64) else flat.float()
        # The target's own size= or scale_factor= (PyTorch's 1/s step), as for the image.
        out = F.interpolate(work, mode=self.mask_interpolation, **self.target.resize_kwargs())
        return out.to(mask.dtype).reshape(*leading, *out.shape[-2:])

    def _map_boxes(
        self,
        boxes: tv_tensors.BoundingBoxes,
        in_size: tuple[int, int],
        out_size: tuple[int, int],
    ) -> tv_tensors.BoundingBoxes:
        if tv_tensors.is_rotated_bounding_format(boxes.format):
            raise ValueError(
                f"rotated bounding boxes ({boxes.format.name}) are not supported by "
                "LearnedResize; use an axis-aligned format (XYXY, XYWH, CXCYWH)."
            )
        # x, y, w, h all scale by the axis ratio in every axis-aligned format.
        mapped = self.target.map_boxes(boxes.as_subclass(torch.Tensor), in_size)
        return tv_tensors.wrap(mapped, like=boxes, canvas_size=out_size)

    def _check_device(self, images: torch.Tensor) -> None:
        parameter = next(self.resizer.parameters(), None)
        if parameter is not None and parameter.device != images.device:
            raise ValueError(
                f"images are on {images.device} but the resizer is on {parameter.device}; "
                "move the transform with .to(device) or the images to the resizer's device."
            )

    def extra_repr(self) -> str:
        target = (
            f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        )
        return f"{target}, mask_interpolation={self.mask_interpolation!r}"


def _work_dtype(resizer: nn.Module, images: torch.Tensor) -> torch.dtype:
    """The resizer's parameter dtype, else float32 (or the images' own float dtype)."""
    parameter = next(resizer.parameters(), None)
    if parameter is not None:
        return parameter.dtype
    return images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32


def _max_value(dtype: torch.dtype) -> float:
    return float(torch.iinfo(dtype).max) if not dtype.is_floating_point else 1.0
