"""A torchvision ``transforms.v2`` transform that resizes with a frozen (learned) resizer.

:class:`LearnedResize` resizes images with the resizer and, in the same call, everything that
lives on those images by the very same geometry: masks with nearest neighbour, bounding boxes and
key points by the coordinate scale of the resizer.

Geometry (``F.interpolate(align_corners=False)``): a continuous coordinate ``x`` in input pixels
(pixel ``i`` spans ``[i, i + 1]``) lands at ``x * r`` in the output, with ``r = w_out / w_in``
(``h_out / h_in`` for ``y``) when a size is given, and ``r = scale_factor`` when a scale factor is
given (then the output has ``floor(w_in * s)`` pixels and PyTorch steps ``1 / s`` input pixels per
output pixel). With a size this is exactly what ``transforms.v2.Resize`` does to boxes. Masks use
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

from downsizenet_hub.channels import resize_any_channels
from downsizenet_hub.limits import check_output_size
from downsizenet_hub.resizer import ScaleArg, SizeArg, resolve_output_size
from downsizenet_hub.resizers import build_resizer

MaskInterpolation = Literal["nearest-exact", "nearest"]
_PIL_MODES = ("L", "LA", "RGB", "RGBA")


class LearnedResize(Transform):
    """Resize images with ``resizer`` frozen; masks, boxes and key points follow.

    Args:
        resizer: a resizer module or a reference for
            :func:`~downsizenet_hub.resizers.build_resizer`.
            It is put in eval mode with gradients off, and runs under ``torch.no_grad``.
        size: output ``(h, w)`` (an int means square); or
        scale_factor: output ``floor(H * s) x floor(W * s)``. Exactly one of the two.
        mask_interpolation: ``"nearest-exact"`` (default) or ``"nearest"``, see the module doc.

    Inputs: ``tv_tensors.Image`` / ``Video`` / plain tensors ``(..., C, H, W)``, uint8 (0..255)
    or float (0..1), any number of leading batch dimensions; PIL images; ``tv_tensors.Mask``
    ``(..., H, W)`` of any dtype; ``tv_tensors.BoundingBoxes`` (axis-aligned formats) and
    ``tv_tensors.KeyPoints``. Outputs keep their type and dtype (uint8 is rounded and clamped).
    1-channel images through a 3-channel learned resizer are handled as in
    :mod:`downsizenet_hub.channels`. The transform moves with ``.to(device)``; images must be on
    the resizer's device (CPU in DataLoader workers, or the GPU for batches already there).

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
        if (size is None) == (scale_factor is None):
            raise ValueError("give exactly one of size=(h, w) or scale_factor=s.")
        if mask_interpolation not in ("nearest-exact", "nearest"):
            raise ValueError(
                "mask_interpolation must be 'nearest-exact' or 'nearest', "
                f"got {mask_interpolation!r}."
            )
        # Check size / scale_factor now rather than in a DataLoader worker (an empty probe batch
        # of a large image: no memory, and any sensible scale factor leaves pixels).
        out, _ = resolve_output_size(torch.empty(0, 1, 1 << 16, 1 << 16), size, scale_factor)
        if size is not None:  # a fixed output size that one image cannot fit is refused now
            check_output_size("size", out, batch=1)
        self.resizer = build_resizer(resizer).eval().requires_grad_(False)
        self.size = size
        self.scale_factor = scale_factor
        self.mask_interpolation = mask_interpolation

    def train(self, mode: bool = True) -> LearnedResize:
        """Keep the resizer frozen in eval mode whatever mode the transform is set to."""
        super().train(mode)
        self.resizer.eval()
        return self

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = query_size(flat_inputs)
        probe = torch.empty(1, 1, height, width)
        (out_h, out_w), (scale_y, scale_x) = resolve_output_size(
            probe, self.size, self.scale_factor
        )
        # The coordinate ratio of the resize geometry (see the module docstring).
        ratio_y = scale_y if scale_y is not None else out_h / height
        ratio_x = scale_x if scale_x is not None else out_w / width
        return {"out_size": (out_h, out_w), "ratio": (ratio_y, ratio_x)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            resized = self._resize_mask(inpt.as_subclass(torch.Tensor), params["out_size"])
            return tv_tensors.wrap(resized, like=inpt)
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            return _scale_boxes(inpt, params["ratio"], params["out_size"])
        if isinstance(inpt, tv_tensors.KeyPoints):
            ratio_y, ratio_x = params["ratio"]
            points = inpt.as_subclass(torch.Tensor)
            scale = torch.tensor([ratio_x, ratio_y], device=points.device)
            scaled = points.mul(scale).to(points.dtype)
            return tv_tensors.wrap(scaled, like=inpt, canvas_size=params["out_size"])
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

        ``alpha``: the last channel is alpha (see :mod:`downsizenet_hub.channels`); PIL ``RGBA``
        and ``LA`` images are resized that way.
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
        kwargs: dict[str, Any] = {"mode": self.mask_interpolation}
        if self.scale_factor is not None:
            kwargs["scale_factor"] = self.scale_factor  # PyTorch's 1/s step, as for the image
        else:
            kwargs["size"] = out_size
        out = F.interpolate(work, **kwargs)
        return out.to(mask.dtype).reshape(*leading, *out.shape[-2:])

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


def _scale_boxes(
    boxes: tv_tensors.BoundingBoxes, ratio: tuple[float, float], out_size: tuple[int, int]
) -> tv_tensors.BoundingBoxes:
    if tv_tensors.is_rotated_bounding_format(boxes.format):
        raise ValueError(
            f"rotated bounding boxes ({boxes.format.name}) are not supported by LearnedResize; "
            "use an axis-aligned format (XYXY, XYWH, CXCYWH)."
        )
    ratio_y, ratio_x = ratio
    # x, y, w, h all scale by the axis ratio in every axis-aligned format.
    scale = torch.tensor([ratio_x, ratio_y, ratio_x, ratio_y], device=boxes.device)
    scaled = boxes.as_subclass(torch.Tensor).mul(scale).to(boxes.dtype)
    return tv_tensors.wrap(scaled, like=boxes, canvas_size=out_size)


def _work_dtype(resizer: nn.Module, images: torch.Tensor) -> torch.dtype:
    """The resizer's parameter dtype, else float32 (or the images' own float dtype)."""
    parameter = next(resizer.parameters(), None)
    if parameter is not None:
        return parameter.dtype
    return images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32


def _max_value(dtype: torch.dtype) -> float:
    return float(torch.iinfo(dtype).max) if not dtype.is_floating_point else 1.0
