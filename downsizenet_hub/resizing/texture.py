"""The texture branch of DownsizeNet at inference speed, and floating pooling.

The texture branch is a few 3x3 convolutions with ReLUs over the full-resolution image; *floating
pooling* (Ma et al., "Task Generalizable Spatial and Texture Aware Image Downsizing Network",
section 3) reads its feature vector at each output pixel's top-left input neighbour. Two
inference-only shortcuts live here, both exact:

* without autograd on the CPU, each conv + ReLU runs as one fused oneDNN call;
* without autograd, large inputs run the branch in horizontal bands (each with ``conv_layers``
  rows of halo), so peak memory stays near the input's size instead of ``channels`` times it.
"""

from __future__ import annotations

import functools
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from downsizenet_hub.resizing.functional import pixel_major
from downsizenet_hub.resizing.geometry import Geometry

_CHANNELS_LAST = torch.channels_last
#: Without autograd, inputs of at least ``INFERENCE_BANDING_MIN_PIXELS`` pixels (about 724x724)
#: run the texture branch in bands of about ``INFERENCE_BAND_PIXELS`` pixels: Cityscapes-sized
#: images then need ~3x the input's bytes of extra memory instead of ~16x. Smaller inputs run
#: whole, which is faster (513x513, batch 8: 150 ms instead of 173 on the 2-core CPU).
INFERENCE_BANDING_MIN_PIXELS = 1 << 19
INFERENCE_BAND_PIXELS = 1 << 17


def pooled_texture(
    texture: nn.Sequential, halo: int, images: torch.Tensor, geometry: Geometry
) -> torch.Tensor:
    """Floating pooling: the ``texture`` branch's feature at each output pixel's top-left
    neighbour (the anchors of ``geometry``); ``halo`` is its number of 3x3 layers.

    Returns ``(B, h*w, channels)``. Without autograd and on large images, the texture branch
    runs on horizontal bands of the input (each with ``halo`` rows of halo, so the result is
    exactly the same), which keeps peak memory near the size of the input instead of
    ``channels`` times it.
    """
    images = images.contiguous(memory_format=_CHANNELS_LAST)
    height, width = images.shape[-2:]
    if torch.is_grad_enabled() or height * width < INFERENCE_BANDING_MIN_PIXELS:
        features = pixel_major(texture_maps(texture, images))
        return features.index_select(1, geometry.anchor_index)
    rows_per_band = max(1, INFERENCE_BAND_PIXELS // width)
    out_rows = geometry.anchor_rows
    pooled = []
    start = 0
    while start < len(out_rows):
        # Output rows whose anchors fall in the next band of input rows.
        first = int(out_rows[start])
        stop = int(torch.searchsorted(out_rows, first + rows_per_band))
        stop = max(stop, start + 1)
        last = int(out_rows[stop - 1])
        top, bottom = max(0, first - halo), min(height, last + 1 + halo)
        # Plain layers here: the fused kernel's peak memory is ~1.4x theirs at 1024x2048.
        band = texture(images[:, :, top:bottom])
        band = band.index_select(2, out_rows[start:stop] - top)
        band = band.index_select(3, geometry.anchor_cols)
        pooled.append(band.permute(0, 2, 3, 1).reshape(band.shape[0], -1, band.shape[1]))
        start = stop
    return torch.cat(pooled, dim=1)


def texture_maps(texture: nn.Sequential, images: torch.Tensor) -> torch.Tensor:
    """The texture branch on a whole image. Without autograd on the CPU, each 3x3 conv and its
    ReLU run as one oneDNN call (equal to float rounding, 7-9% faster on the 2-core machine);
    otherwise, and whenever the fused kernel is missing or the module is being traced or
    compiled, the plain layers run."""
    if (
        torch.is_grad_enabled()
        or images.device.type != "cpu"
        or images.dtype != torch.float32
        or torch.jit.is_scripting()
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or not _fused_conv_relu_available()
    ):
        return texture(images)
    features = images
    for layer in texture:
        if isinstance(
            layer, nn.Conv2d
        ):  # each conv is followed by its ReLU (see DownsizeNet.__init__)
            features = _conv3x3_relu(features, layer.weight, layer.bias)
    return features


def _conv3x3_relu(
    images: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """``relu(conv2d(images, weight, bias, padding=1))`` in one oneDNN call (the kernel that
    torch.compile uses on the CPU; a private op, so its presence is checked once beforehand)."""
    one = [1, 1]
    return cast(
        torch.Tensor,
        torch.ops.mkldnn._convolution_pointwise(
            images, weight, bias, one, one, one, 1, "relu", [], ""
        ),
    )


@functools.cache
def _fused_conv_relu_available() -> bool:
    """Whether this PyTorch build has the fused kernel and it agrees with conv2d + relu."""
    try:
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(1, 2, 5, 6, generator=generator)
        images = images.contiguous(memory_format=_CHANNELS_LAST)
        weight, bias = torch.randn(3, 2, 3, 3, generator=generator), torch.randn(3)
        with torch.no_grad():
            fused = _conv3x3_relu(images, weight, bias)
            plain = F.relu(F.conv2d(images, weight, bias, padding=1))
        return bool(torch.allclose(fused, plain, atol=1e-5, rtol=1e-5))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
