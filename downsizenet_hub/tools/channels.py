"""Resize images whose channels are not what the resizer reads: grayscale, alpha, any count.

A DownsizeNet with a texture branch reads exactly ``in_channels`` channels (3 for the published
resizers), yet files and datasets also hold grayscale and RGBA images. Rather than resize each
channel on its own (which would give colour and alpha different coefficients), the learned
coefficients are computed once per pixel from a *guide* image with the channels the resizer reads,
and then applied to every channel of the image:

* 1 colour channel, resizer reads 3: the guide is the gray channel repeated three times, so the
  texture branch sees a gray RGB picture. The result equals resizing that gray RGB picture.
* 3 colour channels, resizer reads 1: the guide is the luma ``0.299 R + 0.587 G + 0.114 B``.
* alpha (the last channel, when ``alpha=True``): colour is premultiplied by alpha before resizing
  and divided by the resized alpha after, so fully transparent pixels (whose colour is arbitrary)
  contribute nothing. The guide is the premultiplied colour, i.e. the image composited over black.
  Where the resized alpha is 0 the colour is 0.

Fixed resizers (``F.interpolate``) and texture-free DownsizeNets treat channels independently
with the same weights already, so they resize all channels directly (premultiplied for alpha).
"""

from __future__ import annotations

import torch
from torch import nn

from downsizenet_hub.resizing.downsizenet import DownsizeNet
from downsizenet_hub.resizing.sampling import axis_sampling
from downsizenet_hub.resizing.target import ScaleArg, SizeArg, resolve_output_size

#: ITU-R BT.601 luma weights, the ones PIL uses for ``convert("L")``.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def resize_any_channels(
    resizer: nn.Module,
    images: torch.Tensor,
    *,
    size: SizeArg | None = None,
    scale_factor: ScaleArg | None = None,
    alpha: bool = False,
) -> torch.Tensor:
    """Resize ``images`` ``(B, C, H, W)`` (float, values in [0, 1]) whatever ``C`` is.

    Args:
        resizer: any module with the resizer call signature (see
            :mod:`downsizenet_hub.resizing.fixed`).
        images: colour channels first, then alpha when ``alpha`` is True.
        size, scale_factor: exactly one, as in :class:`~downsizenet_hub.DownsizeNet`.
        alpha: whether the last channel is alpha (premultiplied while resizing, see module doc).

    Returns:
        ``(B, C, h, w)`` in the dtype of ``images``.

    Example:
        >>> import torch
        >>> from downsizenet_hub import DownsizeNet
        >>> gray = torch.rand(2, 1, 40, 40)
        >>> resize_any_channels(DownsizeNet(), gray, size=(16, 16)).shape
        torch.Size([2, 1, 16, 16])
        >>> rgba = torch.rand(1, 4, 40, 30)
        >>> resize_any_channels(DownsizeNet(), rgba, scale_factor=0.5, alpha=True).shape
        torch.Size([1, 4, 20, 15])
    """
    resolve_output_size(images, size, scale_factor)  # the same one-sentence errors as resizers
    colour_channels = images.shape[1] - (1 if alpha else 0)
    if colour_channels < 1:
        raise ValueError(
            f"images need a colour channel besides alpha, got {images.shape[1]} channels."
        )
    colour = images[:, :colour_channels]
    opacity = images[:, colour_channels:]
    if alpha:
        colour = colour * opacity
        images = torch.cat([colour, opacity], dim=1)
    if _reads_channels(resizer) in (None, images.shape[1]):
        out = resizer(images, size=size, scale_factor=scale_factor)
    else:
        assert isinstance(resizer, DownsizeNet)
        guide = guide_image(colour, resizer.config.in_channels)
        coefficients = resizer.coefficient_maps(guide, size=size, scale_factor=scale_factor)
        out = mix_neighbours(images, coefficients, resizer.config.neighbourhood, size, scale_factor)
    if alpha:
        out = _unpremultiply(out, colour_channels)
    return out


def mix_neighbours(
    images: torch.Tensor,
    coefficients: torch.Tensor,
    neighbourhood: str,
    size: SizeArg | None = None,
    scale_factor: ScaleArg | None = None,
) -> torch.Tensor:
    """Apply per-pixel coefficients ``(B, h, w, Ky, Kx)`` to every channel of ``images``.

    ``coefficients`` come from :meth:`DownsizeNet.coefficient_maps` for the same input size,
    ``size``/``scale_factor`` and ``neighbourhood``; the neighbours are those of
    :func:`~downsizenet_hub.resizing.sampling.axis_sampling`. For a guide equal to ``images`` this
    is exactly what the resizer's forward computes.
    """
    target, out_size = resolve_output_size(images, size, scale_factor)
    scales = target.scales
    height, width = images.shape[-2:]
    rows = axis_sampling(neighbourhood, height, out_size[0], scales[0])  # type: ignore[arg-type]
    cols = axis_sampling(neighbourhood, width, out_size[1], scales[1])  # type: ignore[arg-type]
    expected = (images.shape[0], *out_size, rows.index.shape[1], cols.index.shape[1])
    if tuple(coefficients.shape) != expected:
        raise ValueError(
            f"coefficients have shape {tuple(coefficients.shape)}, expected {expected} for "
            f"{height}x{width} images and the {neighbourhood} neighbourhood."
        )
    index_y = rows.index.reshape(-1).to(images.device)
    index_x = cols.index.reshape(-1).to(images.device)
    batch, channels = images.shape[:2]
    taps = images.index_select(2, index_y).index_select(3, index_x)
    taps = taps.view(batch, channels, out_size[0], rows.index.shape[1], out_size[1], -1)
    mixed = torch.einsum("bchkwl,bhwkl->bchw", taps, coefficients.to(taps.dtype))
    return mixed.to(images.dtype)


def _reads_channels(resizer: nn.Module) -> int | None:
    """The channel count a resizer insists on, or None when it resizes channels independently."""
    if isinstance(resizer, DownsizeNet) and resizer.config.conv_layers > 0:
        return resizer.config.in_channels
    return None


def guide_image(colour: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Colour channels ``(B, c, H, W)`` as the ``in_channels`` a texture branch reads."""
    channels = colour.shape[1]
    if channels == in_channels:
        return colour
    if channels == 1:
        return colour.expand(-1, in_channels, -1, -1)
    if channels == 3 and in_channels == 1:
        weights = torch.tensor(LUMA_WEIGHTS, dtype=colour.dtype, device=colour.device)
        return torch.einsum("bchw,c->bhw", colour, weights).unsqueeze(1)
    raise ValueError(
        f"cannot guide a resizer that reads {in_channels} channels with {channels}-channel "
        "images; expected 1 or 3 colour channels (plus alpha)."
    )


def _unpremultiply(images: torch.Tensor, colour_channels: int) -> torch.Tensor:
    colour = images[:, :colour_channels]
    opacity = images[:, colour_channels:]
    safe = torch.where(opacity > 0, opacity, torch.ones_like(opacity))
    colour = torch.where(opacity > 0, colour / safe, torch.zeros_like(colour))
    return torch.cat([colour, opacity], dim=1)
