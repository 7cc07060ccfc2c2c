"""The texture branch of DownsizeNet, fast and exact, and floating pooling.

The texture branch is a few 3x3 convolutions with ReLUs over the full-resolution image; *floating
pooling* (Ma et al., "Task Generalizable Spatial and Texture Aware Image Downsizing Network",
section 3) reads its feature vector at each output pixel's top-left input neighbour. The
shortcuts here are all exact (tested against :func:`pooled_texture_reference`, whole maps then a
gather, which is also what scripting, tracing, compiling and exporting run):

* where anchors are sparse, the last conv runs at the anchors only (see :mod:`.anchors`), with
  autograd too; without autograd, where they are only fewer than the input rows, it runs at the
  anchor rows only; without autograd on the CPU, where the compiled kernel of :mod:`.native` is
  available, it runs at the anchors straight from the map, no grid or rows gathered;
* without autograd on the CPU, each conv + ReLU runs as one fused oneDNN call;
* without autograd, the branch reads a few images per call, so that its feature maps stay small
  enough for glibc's default malloc to reuse them (:data:`INFERENCE_CALL_PIXELS`);
* without autograd, large inputs run the branch in horizontal bands (each with ``conv_layers``
  rows of halo), so peak memory stays near the input's size instead of ``channels`` times it.
"""

from __future__ import annotations

import functools
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from downsizenet_hub.resizing import native
from downsizenet_hub.resizing.anchors import (
    Band,
    BandCache,
    anchor_rows_pay,
    anchors_pay,
    gather_blocks,
    gather_rows,
)
from downsizenet_hub.resizing.functional import pixel_major
from downsizenet_hub.resizing.geometry import Geometry
from downsizenet_hub.resizing.workspace import Workspace

_CHANNELS_LAST = torch.channels_last
#: Without autograd, inputs of at least ``INFERENCE_BANDING_MIN_PIXELS`` pixels (about 724x724)
#: run the texture branch in bands of about ``INFERENCE_BAND_PIXELS`` pixels: Cityscapes-sized
#: images then need ~3x the input's bytes of extra memory instead of ~16x. Smaller inputs run
#: whole, which is faster (513x513, batch 8: 150 ms instead of 173 on the 2-core CPU).
INFERENCE_BANDING_MIN_PIXELS = 1 << 19
INFERENCE_BAND_PIXELS = 1 << 17
#: Without autograd, the texture branch reads at most this many input pixels per call (whole
#: images, several per call if they fit): its 16-channel feature maps then stay near 16 MiB, under
#: the 32 MiB ceiling of glibc's dynamic mmap threshold, so its default malloc serves them from the
#: heap after the first forward instead of mapping them fresh and unmapping them on every call
#: (issue 19). 513->179, batch 8, resizer alone, glibc defaults: 287 ms of CPU time instead of
#: 472 (the whole batch at once); with the CLI's allocator ~equal (measured on f9b2cf7).
INFERENCE_CALL_PIXELS = 1 << 18


def pooled_texture(
    texture: nn.Sequential,
    halo: int,
    images: torch.Tensor,
    geometry: Geometry,
    band_cache: BandCache,
    *,
    workspace: Workspace | None = None,
) -> torch.Tensor:
    """Floating pooling: the ``texture`` branch's feature at each output pixel's top-left
    neighbour (the anchors of ``geometry``); ``halo`` is its number of 3x3 layers.

    Returns ``(B, h*w, channels)``. Where anchors are sparse (:func:`.anchors.anchors_pay`), the
    last convolution runs only at the anchors, on the grid of their 3x3 neighbourhoods (exact, see
    :mod:`.anchors`), with autograd too; without autograd, where they are only fewer than the input
    rows (:func:`.anchors.anchor_rows_pay`), at the anchor rows only. Without autograd the branch
    reads at most :data:`INFERENCE_CALL_PIXELS` pixels per call (a few images at a time), and on
    large images runs on horizontal bands (each with ``halo`` rows of halo, so the result is
    exactly the same), which keeps peak memory near the size of the input instead of ``channels``
    times it. While scripting, tracing, compiling or exporting, :func:`pooled_texture_reference`
    runs. Without autograd on the CPU, the grids of blocks (or gathered rows) and the pooled
    features of several calls are written into ``workspace``'s buffers (:mod:`.workspace`) rather
    than allocated afresh.
    """
    height, width = images.shape[-2:]
    h, w = geometry.out_size
    if (
        torch.jit.is_scripting()
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
        or not isinstance(width, int)
        or not isinstance(height, int)
    ):
        return pooled_texture_reference(texture, images, geometry)
    at_anchors = anchors_pay((height, width), (h, w))
    if torch.is_grad_enabled():
        if not at_anchors:
            return pooled_texture_reference(texture, images, geometry)
        images = images.contiguous(memory_format=_CHANNELS_LAST)
        (band,) = band_cache.bands(geometry, height, width, height, halo)
        features = texture[:-2](images)
        return pixel_major(last_conv_at_anchors(texture, features, band, w, fused=False))
    images = images.contiguous(memory_format=_CHANNELS_LAST)
    banded = height * width >= INFERENCE_BANDING_MIN_PIXELS
    rows_per_band = max(1, INFERENCE_BAND_PIXELS // width) if banded else height
    # Plain layers in bands: the fused kernel's peak memory is ~1.4x theirs at 1024x2048.
    fused = fused_available(images) and not banded
    last_conv = cast(nn.Conv2d, texture[-2])
    # The compiled kernel computes the last conv at the anchors straight from the map; else
    # the grid of blocks, the anchor rows or the whole map, whichever pays.
    compiled = native.pays((height, width), (h, w)) and native.applies(images, last_conv.weight)
    at_anchors = at_anchors and not compiled
    at_rows = anchor_rows_pay((height, width), (h, w)) and not compiled
    bands = band_cache.bands(geometry, height, width, rows_per_band, halo)
    batch = images.shape[0]
    per_call = inference_call_images(height, width)
    one_call = len(bands) == 1 and per_call >= batch
    last = not (compiled or at_anchors or at_rows)  # the branch runs its last conv itself
    pooled_maps: torch.Tensor | None = None
    for band in bands:
        rows = slice(band.start * w, band.stop * w)
        for first in range(0, batch, per_call):
            chunk = slice(first, first + per_call)
            features = images[chunk, :, band.top : band.bottom]
            features = texture_layers(texture, features, fused, last=last)
            if compiled:
                if pooled_maps is None:
                    shape = (batch, h * w, last_conv.out_channels)
                    pooled_maps = _pooled_buffer(shape, images, workspace)
                native.conv3x3_relu_at(
                    features,
                    last_conv.weight,
                    last_conv.bias,
                    band.anchor_rows,
                    geometry.anchor_cols,
                    out=pooled_maps[chunk, rows],
                )
                continue
            if at_rows:
                features = last_conv_at_anchor_rows(
                    texture, features, band, fused=fused, workspace=workspace
                )
            if at_anchors:
                at_anchor = last_conv_at_anchors(
                    texture, features, band, w, fused=fused, workspace=workspace
                )
                pooled = pixel_major(at_anchor)
                if one_call:
                    return pooled
            else:
                # One gather of pixel vectors (two index_selects on the channels-last map
                # cost ~20% more of the resizer at 300->160, batch 8).
                if at_rows:
                    index = band.row_anchor_index
                else:
                    index = geometry.anchor_index[rows]
                    index = index - band.top * width if band.top else index
                pixels = pixel_major(features)
                if pooled_maps is None and workspace is not None:
                    shape = (batch, h * w, pixels.shape[-1])
                    pooled_maps = workspace.buffer("pooled", shape, pixels)
                if pooled_maps is not None and len(bands) == 1:  # whole images: a contiguous slice
                    torch.index_select(pixels, 1, index, out=pooled_maps[chunk])
                    continue
                pooled = pixels.index_select(1, index)
                if one_call:
                    return pooled
            if pooled_maps is None:
                pooled_maps = _pooled_buffer((batch, h * w, pooled.shape[-1]), pooled, workspace)
            pooled_maps[chunk, rows] = pooled
    assert pooled_maps is not None
    return pooled_maps


def _pooled_buffer(
    shape: tuple[int, int, int], like: torch.Tensor, workspace: Workspace | None
) -> torch.Tensor:
    """The pooled features' tensor: ``workspace``'s kept buffer, else a new one."""
    kept = None if workspace is None else workspace.buffer("pooled", shape, like)
    return like.new_empty(shape) if kept is None else kept


def inference_call_images(height: int, width: int) -> int:
    """How many ``height x width`` images one call of the texture branch reads without autograd
    (see :data:`INFERENCE_CALL_PIXELS`)."""
    return max(1, INFERENCE_CALL_PIXELS // max(1, height * width))


def pooled_texture_reference(
    texture: nn.Sequential, images: torch.Tensor, geometry: Geometry
) -> torch.Tensor:
    """The texture branch on the whole images, then a gather at the anchors (``(B, h*w, C)``).

    The reference the faster paths are tested against; traceable and exportable."""
    images = images.contiguous(memory_format=_CHANNELS_LAST)
    features = pixel_major(texture_maps(texture, images))
    return features.index_select(1, geometry.anchor_index)


def last_conv_at_anchors(
    texture: nn.Sequential,
    features: torch.Tensor,
    band: Band,
    out_width: int,
    *,
    fused: bool,
    workspace: Workspace | None = None,
) -> torch.Tensor:
    """The last 3x3 conv + ReLU of ``texture`` at the anchors of ``band``: ``(B, C, n, w)``.

    ``features`` are the input rows ``band.top:band.bottom`` of the last conv, channels-last; a
    stride-3 convolution without padding of their grid of 3x3 blocks (see :mod:`.anchors`),
    gathered into ``workspace`` when one is given (inference).
    """
    grid = gather_blocks(features, band, out_width, workspace=workspace)
    last = cast(nn.Conv2d, texture[-2])
    if fused:
        return _conv3x3_relu(grid, last.weight, last.bias, padding=0, stride=3)
    return F.relu(F.conv2d(grid, last.weight, last.bias, stride=3))


def last_conv_at_anchor_rows(
    texture: nn.Sequential,
    features: torch.Tensor,
    band: Band,
    *,
    fused: bool,
    workspace: Workspace | None = None,
) -> torch.Tensor:
    """The last 3x3 conv + ReLU of ``texture`` at the anchor rows of ``band``, over the whole
    width: ``(B, C, n, W)`` channels-last. ``features`` as for :func:`last_conv_at_anchors`; a
    convolution with stride 3 down and 1 across, padded across only, of the three rows around
    each anchor row (see :mod:`.anchors`)."""
    rows = gather_rows(features, band, workspace=workspace)
    last = cast(nn.Conv2d, texture[-2])
    if fused:
        return _conv3x3_relu(rows, last.weight, last.bias, padding=(0, 1), stride=(3, 1))
    return F.relu(F.conv2d(rows, last.weight, last.bias, stride=(3, 1), padding=(0, 1)))


def fused_available(images: torch.Tensor) -> bool:
    """Whether the fused oneDNN conv + ReLU kernel can run the texture branch on ``images``."""
    return (
        not torch.is_grad_enabled()
        and images.device.type == "cpu"
        and images.dtype == torch.float32
        and _fused_conv_relu_available()
    )


def texture_layers(
    texture: nn.Sequential, images: torch.Tensor, fused: bool, *, last: bool
) -> torch.Tensor:
    """The ``texture`` branch (``last=False``: all but its last conv + ReLU) on ``images``."""
    layers = list(texture) if last else list(texture)[:-2]
    if not fused:
        for layer in layers:
            images = layer(images)
        return images
    for layer in layers:
        if isinstance(layer, nn.Conv2d):  # each conv is followed by its ReLU (DownsizeNet)
            images = _conv3x3_relu(images, layer.weight, layer.bias)
    return images


def texture_maps(texture: nn.Sequential, images: torch.Tensor) -> torch.Tensor:
    """The texture branch on a whole image. Without autograd on the CPU, each 3x3 conv and its
    ReLU run as one oneDNN call (equal to float rounding, 7-9% faster on the 2-core machine);
    otherwise, and whenever the fused kernel is missing or the module is being traced or
    compiled, the plain layers run."""
    # The tracing checks first: the capability probe behind fused_available is a cached
    # Python call that a compiled graph would break at.
    fused = (
        not torch.jit.is_scripting()
        and not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()
        and not torch.compiler.is_exporting()
        and fused_available(images)
    )
    return texture_layers(texture, images, fused, last=True)


def _conv3x3_relu(
    images: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    padding: int | tuple[int, int] = 1,
    stride: int | tuple[int, int] = 1,
) -> torch.Tensor:
    """``relu(conv2d(images, weight, bias, stride, padding))`` in one oneDNN call (the kernel
    that torch.compile uses on the CPU; a private op, so its presence is checked once
    beforehand). ``padding`` and ``stride``: one for both sides, or (down, across)."""
    pads = list(padding) if isinstance(padding, tuple) else [padding] * 2
    strides = list(stride) if isinstance(stride, tuple) else [stride] * 2
    return cast(
        torch.Tensor,
        torch.ops.mkldnn._convolution_pointwise(
            images, weight, bias, pads, strides, [1, 1], 1, "relu", [], ""
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
