"""The functional form of the resizers: plain functions the modules are thin wrappers around.

As kornia pairs ``warp_affine`` with its module, a DownsizeNet resize is a chain of functions
that can be called on their own (by the module, the exporters, the tests):

1. the sampling geometry of a resize (:func:`~downsizenet_hub.resizing.geometry.build_geometry`,
   cached per shape by :meth:`DownsizeNet.prepare`, which also checks the call);
2. the texture branch read at the anchors (:mod:`.texture`), then :func:`head_logits`: the 1x1
   head's logits from those features and the relative-distance map;
3. :func:`normalise`: logits to convex coefficients (:func:`log_sigmoid` for sigmoid heads);
4. :func:`mix`: gather every tap and take the convex combination.

:func:`downsize` runs them through any :class:`Resampler` (a DownsizeNet);
:func:`interpolate` is the classical counterpart of the fixed resizers. This module imports no
module class: the resizers import it, never the other way. Conventions: images ``(B, C, H, W)``
float; coordinates as ``F.interpolate(align_corners=False)`` (see :mod:`.target`); output
``(B, C, h, w)`` in the images' dtype.

Example:
    >>> import torch
    >>> from downsizenet_hub.resizing import DownsizeNet
    >>> images = torch.rand(1, 3, 40, 40)
    >>> out = downsize(images, DownsizeNet.as_bilinear(), scale_factor=0.5)
    >>> bool(torch.allclose(out, interpolate(images, "bilinear", scale_factor=0.5), atol=1e-6))
    True
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F

from downsizenet_hub.resizing import native
from downsizenet_hub.resizing.config import ANTIALIAS_GRID, Coefficients
from downsizenet_hub.resizing.geometry import Geometry
from downsizenet_hub.resizing.target import ScaleArg, SizeArg, resolve_output_size
from downsizenet_hub.resizing.workspace import Workspace

#: Classical resizers, all from ``F.interpolate`` with ``align_corners=False`` where it applies.
FIXED_MODES: tuple[str, ...] = ("bilinear", "bicubic", "area", "antialias", "nearest")
#: Below this logit, :func:`log_sigmoid` returns the logit itself: ``log(sigmoid(z))`` equals
#: ``z - log1p(exp(z))``, which is ``z`` to float64 precision there (``exp(-80)`` is 2e-35),
#: while ``sigmoid(z)`` alone would underflow float32 below about -88.
LOG_SIGMOID_LINEAR_BELOW = -80.0
#: Without autograd, sigmoid coefficients are normalised directly (``prior * sigmoid(z)`` over
#: its sum) where every pixel's sum is at least this, far above float32's smallest normal
#: number (1.2e-38), so that no weight loses precision; elsewhere in log space.
DIRECT_NORMALISATION_MIN_TOTAL = 1e-30


class Resampler(Protocol):
    """What :func:`downsize` needs of a resizer: check a call, then resample with its geometry
    (:class:`~downsizenet_hub.resizing.downsizenet.DownsizeNet` is one)."""

    def prepare(
        self,
        images: torch.Tensor,
        size: SizeArg | None = None,
        scale_factor: ScaleArg | None = None,
    ) -> Geometry: ...

    def resample(self, images: torch.Tensor, geometry: Geometry) -> torch.Tensor: ...


def downsize(
    images: torch.Tensor,
    net: Resampler,
    size: SizeArg | None = None,
    scale_factor: ScaleArg | None = None,
    *,
    geometry: Geometry | None = None,
) -> torch.Tensor:
    """``net(images, size=..., scale_factor=...)`` as a function: check the call, take the
    cached geometry (or the one given, e.g. built from symbolic shapes), mix the taps."""
    checked = net.prepare(images, size, scale_factor)
    return net.resample(images, checked if geometry is None else geometry)


def head_logits(
    pooled: torch.Tensor | None,
    geometry: Geometry,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    batch: int,
    use_distance: bool,
) -> torch.Tensor:
    """The 1x1 head on ``[pooled texture, distance]`` pixel vectors: logits ``(B, h*w, L)``.

    ``pooled``: the texture features at the anchors ``(B, h*w, T)`` (None without a texture
    branch); ``weight`` ``(L, T + D)``: the head's texture columns, then its distance columns.
    The distance part is the same for every image, so it is computed once and broadcast rather
    than concatenated to every image's features. The logits are float32 at least.
    """
    logits: torch.Tensor | None = None
    texture_channels = 0
    if pooled is not None:
        texture_channels = pooled.shape[-1]
        logits = F.linear(pooled, weight[:, :texture_channels].to(pooled.dtype))
    if use_distance:
        dtype = logits.dtype if logits is not None else weight.dtype
        bias = bias.to(dtype) if bias is not None else None
        distance_weight = weight[:, texture_channels:].to(dtype)
        shared = F.linear(geometry.distance.to(dtype), distance_weight, bias)
        logits = shared.expand(batch, -1, -1) if logits is None else logits + shared
    elif logits is not None and bias is not None:
        logits = logits + bias.to(logits.dtype)
    if logits is None:
        raise ValueError("head_logits needs texture features, the distance map or both.")
    # Coefficients are computed in float32 at least (autocast may hand back half precision).
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def normalise(
    logits: torch.Tensor,
    geometry: Geometry,
    coefficients: Coefficients,
    *,
    in_place: bool = False,
    workspace: Workspace | None = None,
) -> torch.Tensor:
    """Logits ``(B, h, w, L)`` to convex coefficients ``(B, h, w, Ky, Kx)`` (non-negative, each
    pixel's summing to one).

    ``sigmoid`` and ``softmax`` are normalised in log space, so that no logit can underflow the
    normalisation: ``log(prior * act(z))`` is shifted by its maximum, which is finite because the
    prior has mass on at least one real tap; the largest term is then exactly 1. ``linear`` clamps
    at zero and falls back to the plain average where every weight is zero. With ``in_place``
    (inference only: nothing may need ``logits`` afterwards) the sigmoid and softmax steps reuse
    the logits' memory; the numbers are the same (sigmoid coefficients are normalised directly,
    equal to float rounding; see :func:`_sigmoid_coefficients`). ``workspace``: keep sigmoid
    coefficients there from call to call (inference only; see :mod:`.workspace`).
    """
    batch, h, w, _ = logits.shape
    ky, kx = geometry.taps
    if geometry.grid_y is not None and geometry.grid_x is not None:
        grid = logits.view(batch, h, w, ANTIALIAS_GRID, ANTIALIAS_GRID)
        grid_y, grid_x = geometry.grid_y.to(grid.dtype), geometry.grid_x.to(grid.dtype)
        taps = torch.einsum("hkg,wlq,bhwgq->bhwkl", grid_y, grid_x, grid)
    else:
        taps = logits.view(batch, h, w, ky, kx)
    if coefficients == "linear":
        weights = taps.clamp_min(0.0) * geometry.prior  # the prior is 0 on padding taps
        total = weights.sum(dim=(3, 4), keepdim=True)
        uniform = geometry.mask / geometry.mask.sum(dim=(2, 3), keepdim=True)
        # A linear head can output all zeros: fall back to the plain average of the taps.
        safe = torch.where(total > 0, total, torch.ones_like(total))
        return torch.where(total > 0, weights / safe, uniform)
    # Directly only in plain CPU inference: its underflow check reads a value back (a graph
    # break when compiling, a device sync on a GPU).
    if in_place and coefficients == "sigmoid" and Workspace.applies(taps):
        direct = _sigmoid_coefficients(taps, geometry, workspace)
        if direct is not None:
            return direct
    if in_place and not taps.requires_grad and taps.is_contiguous():
        # One new tensor (the activations) instead of five; the same kernels, the same numbers.
        scores = log_sigmoid(taps) if coefficients == "sigmoid" else taps
        scores.add_(geometry.log_prior)
        scores.sub_(scores.amax(dim=(3, 4), keepdim=True)).exp_()
        return scores.div_(scores.sum(dim=(3, 4), keepdim=True))
    log_act = log_sigmoid(taps) if coefficients == "sigmoid" else taps
    scores = log_act + geometry.log_prior
    weights = torch.exp(scores - scores.amax(dim=(3, 4), keepdim=True))
    return weights / weights.sum(dim=(3, 4), keepdim=True)


def _sigmoid_coefficients(
    taps: torch.Tensor, geometry: Geometry, workspace: Workspace | None = None
) -> torch.Tensor | None:
    """``prior * sigmoid(z)`` normalised directly, without autograd: four kernels instead of the
    log-space form's ten, equal to float rounding. None where some pixel's total falls below
    :data:`DIRECT_NORMALISATION_MIN_TOTAL` (every logit below about -69): the log-space form,
    which no logit underflows, then runs instead. With a ``workspace`` the coefficients are
    written into its buffer, which the next call overwrites."""
    kept = None if workspace is None else workspace.buffer("coefficients", taps.shape, taps)
    weights = torch.sigmoid(taps) if kept is None else torch.sigmoid(taps, out=kept)
    weights.mul_(geometry.prior)
    total = weights.sum(dim=(3, 4), keepdim=True)
    if bool(total.amin() < DIRECT_NORMALISATION_MIN_TOTAL):
        return None
    return weights.div_(total)


def log_sigmoid(logits: torch.Tensor) -> torch.Tensor:
    """``F.logsigmoid(logits)``; without autograd, a cheaper form: ``log(sigmoid(z))`` above
    :data:`LOG_SIGMOID_LINEAR_BELOW`, ``z`` itself at or below it (where the two agree to float
    precision and ``sigmoid`` alone would underflow), so that every value is finite for finite
    ``z`` and no logit underflows the normalisation. Returns a new tensor.

    On the CPU ``F.logsigmoid`` costs about 20 times ``torch.sigmoid`` (0.63 ms against 0.03 on
    128k logits; issue 28). The two forms differ by float rounding (a few 1e-7), which is within
    the golden checks' tolerance for single resizes but not for a training trajectory: 20 steps
    of the golden segmentation cell move by 1% with the cheap form. So training (autograd) keeps
    ``F.logsigmoid``, and changing that is a numerics change (a new numerics version).
    """
    if torch.is_grad_enabled() and logits.requires_grad:
        return F.logsigmoid(logits)
    return _log_sigmoid_values(logits)


def _log_sigmoid_values(logits: torch.Tensor) -> torch.Tensor:
    return torch.where(logits > LOG_SIGMOID_LINEAR_BELOW, torch.sigmoid(logits).log_(), logits)


def mix(
    images: torch.Tensor,
    coefficients: torch.Tensor,
    geometry: Geometry,
    *,
    workspace: Workspace | None = None,
) -> torch.Tensor:
    """Gather every tap's pixel vector and take the convex mix: ``(B, C, h, w)``.

    ``coefficients`` ``(B, h, w, Ky, Kx)`` as :meth:`DownsizeNet.coefficients` returns them.
    ``workspace``: keep the gathered taps there from call to call (inference only; see
    :mod:`.workspace`). Without autograd on the CPU, each image's mix is one weighted
    ``F.embedding_bag`` over its pixel vectors instead (the gather and the weighted sum in one
    kernel, no taps held: 3-4x faster than the two steps; equal to float rounding), or for
    float32 the compiled kernel of :mod:`.native`, which reads the images in place.
    """
    batch, channels = images.shape[:2]
    h, w = geometry.out_size
    if _bags_apply(images, coefficients):
        index = geometry.taps_index.view(h * w, -1)
        if native.mix_applies(images, coefficients):
            mixed = native.mix_taps(images, index, coefficients.reshape(batch, h * w, -1))
            return mixed.view(batch, h, w, channels).permute(0, 3, 1, 2)
        pixels = pixel_major(images)
        weights = coefficients.reshape(batch, h * w, -1).to(pixels.dtype)
        bags = [
            F.embedding_bag(index, pixels[i], per_sample_weights=weights[i], mode="sum")
            for i in range(batch)
        ]
        return torch.stack(bags).view(batch, h, w, channels).permute(0, 3, 1, 2)
    pixels = pixel_major(images)
    shape = (batch, geometry.taps_index.numel(), channels)
    buffer = None if workspace is None else workspace.buffer("taps", shape, pixels)
    if buffer is None:
        taps = pixels.index_select(1, geometry.taps_index)  # (B, h*w*K, C)
    else:
        taps = torch.index_select(pixels, 1, geometry.taps_index, out=buffer)
    taps = taps.view(batch, h * w, -1, channels)
    weights = coefficients.reshape(batch, h * w, 1, -1).to(taps.dtype)
    out = torch.matmul(weights, taps).view(batch, h, w, channels)
    return out.permute(0, 3, 1, 2).to(images.dtype)


def _bags_apply(images: torch.Tensor, coefficients: torch.Tensor) -> bool:
    """Whether :func:`mix` runs as weighted bags (or the compiled kernel): no autograd, on the
    CPU, float32 or float64 images, and a plain graph (neither is what exporting and compiling
    should see)."""
    return (
        Workspace.applies(images)
        and images.dtype in (torch.float32, torch.float64)
        and not coefficients.requires_grad
    )


def pixel_major(images: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` as ``(B, H*W, C)`` pixel vectors (a view when already channels-last)."""
    batch, channels = images.shape[:2]
    return images.permute(0, 2, 3, 1).reshape(batch, -1, channels)


def interpolate(
    images: torch.Tensor,
    mode: str,
    size: SizeArg | None = None,
    scale_factor: ScaleArg | None = None,
) -> torch.Tensor:
    """A classical resize (one of :data:`FIXED_MODES`) with the package's checks and geometry.

    ``antialias`` is bilinear with ``antialias=True`` (the triangle filter widened by the
    downscale factor); ``area`` is adaptive average pooling. A scale factor keeps
    ``F.interpolate``'s own geometry (coordinate step ``1 / s``), as DownsizeNet does.
    """
    if mode not in FIXED_MODES:
        raise ValueError(f"mode must be one of {list(FIXED_MODES)}, got {mode!r}.")
    target, _ = resolve_output_size(images, size, scale_factor)
    kwargs: dict[str, Any] = target.resize_kwargs()
    if mode in ("nearest", "area"):
        return F.interpolate(images, mode=mode, **kwargs)
    if mode == "antialias":
        return F.interpolate(images, mode="bilinear", align_corners=False, antialias=True, **kwargs)
    return F.interpolate(images, mode=mode, align_corners=False, **kwargs)
