"""DownsizeNet: a learned, drop-in image resizer (Ma et al., "Task Generalizable Spatial and
Texture Aware Image Downsizing Network", sections 3 and 4).

Each output pixel is a convex mix of its input neighbours (2x2 for ``bilinear``, 4x4 for
``bicubic``, the widened triangle-filter support for ``antialias``). The mixing coefficients are
inferred per pixel:

1. a few 3x3 convolutions (the *texture branch*) read the full-resolution image;
2. *floating pooling* picks, for each output pixel, the feature vector at the top-left neighbour
   of its projection onto the input;
3. the *relative-distance map* (the classical interpolation weights of the neighbourhood, e.g. the
   paper's ``[(1-dx)(1-dy), dx(1-dy), (1-dx)dy, dxdy]``) is concatenated to it;
4. a 1x1 convolution gives one logit per neighbour, and a sigmoid (or softmax) followed by a
   sum-to-one normalisation gives the coefficients.

Because the coefficients are non-negative and sum to one, the output stays an image: every pixel
lies within the range of the pixels it mixes, whatever the weights. That is what lets a resizer
trained in one pipeline be reused frozen in another.

The module imports nothing else of this package but its configuration
(:mod:`downsizenet_hub.resizing.config`), its sampling geometry and input limits
(:mod:`downsizenet_hub.limits`); storage lives in :mod:`downsizenet_hub.hub`.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from downsizenet_hub.limits import check_memory, check_scale_factor, resize_memory_bytes
from downsizenet_hub.resizing.config import (
    ANTIALIAS_GRID,
    DownsizeNetConfig,
)
from downsizenet_hub.sampling import (
    AxisSampling,
    antialias_taps,
    axis_sampling,
    coordinate_scale,
)

SizeArg = int | tuple[int, int] | list[int] | torch.Size
ScaleArg = float | tuple[float, float] | list[float]

#: Std of the texture part of the 1x1 head at ``init="bilinear"``: small enough that the start is
#: bilinear to ~1e-4, non-zero so that gradients reach the texture branch from the first step.
TEXTURE_HEAD_INIT_STD = 1e-4
_GEOMETRY_CACHE_SIZE = 16
_CHANNELS_LAST = torch.channels_last
#: Without autograd, inputs of at least ``INFERENCE_BANDING_MIN_PIXELS`` pixels (about 724x724)
#: run the texture branch in bands of about ``INFERENCE_BAND_PIXELS`` pixels: Cityscapes-sized
#: images then need ~3x the input's bytes of extra memory instead of ~16x. Smaller inputs run
#: whole, which is faster (513x513, batch 8: 150 ms instead of 173 on the 2-core CPU).
INFERENCE_BANDING_MIN_PIXELS = 1 << 19
INFERENCE_BAND_PIXELS = 1 << 17


class _Geometry(NamedTuple):
    """Per-shape constants, in pixel-major (channels-last) order: output pixel, then tap.

    Flat indices address ``H * W`` input pixels, so gathers move whole pixel vectors.
    """

    taps_index: torch.Tensor  # (h * w * Ky * Kx,) long, flat input pixel of every tap
    anchor_index: torch.Tensor  # (h * w,) long, flat input pixel of each top-left neighbour
    distance: torch.Tensor  # (h * w, D), the relative-distance vectors
    log_prior: torch.Tensor  # (h, w, Ky, Kx), log(prior * mask): -inf on padding taps
    prior: torch.Tensor  # (h, w, Ky, Kx), convex weights (ones when there is no prior)
    mask: torch.Tensor  # (h, w, Ky, Kx), 1 for real taps, 0 for padding taps
    grid_y: torch.Tensor | None  # (h, Ky, G) hat-function weights of the antialias logit grid
    grid_x: torch.Tensor | None  # (w, Kx, G)
    out_size: tuple[int, int]
    taps: tuple[int, int]
    anchor_rows: torch.Tensor  # (h,) long, non-decreasing
    anchor_cols: torch.Tensor  # (w,) long


def _hat_weights(position: torch.Tensor, nodes: int) -> torch.Tensor:
    """Linear-interpolation weights of ``position`` in [-1, 1] on ``nodes`` evenly spaced nodes."""
    grid = torch.linspace(-1.0, 1.0, nodes, dtype=position.dtype)
    spacing = 2.0 / (nodes - 1)
    return (1.0 - (position[..., None] - grid).abs() / spacing).clamp_min(0.0)


class DownsizeNet(nn.Module):
    """A learned image resizer: each output pixel is a convex mix of its input neighbours.

    Conventions: input ``(B, C, H, W)`` floating point, output ``(B, C, h, w)`` in the same dtype.
    Coordinates follow ``F.interpolate(align_corners=False)`` (half-pixel centres, indices clamped
    at the borders); ``scale_factor`` behaves as in ``F.interpolate`` (output ``floor(H * s)``,
    coordinate step ``1 / s``). Works for any output size, up or down, non-square, fractional.

    Starting point: with ``init="bilinear"`` (the default) the 1x1 head's weights on the distance
    map and its bias are zero, so every neighbour gets the same logit; the distance prior then
    makes the coefficients exactly the classical ones (bilinear; antialiased bilinear for the
    ``antialias`` neighbourhood; bilinear inside the 4x4 window, plus 1e-4 uniform mass, for
    ``bicubic``). The head's texture weights start at std 1e-4, so the start is bilinear to about
    1e-4 and gradients still reach the texture branch from the first step. Inserting the module
    into a pipeline therefore never starts below the bilinear baseline. Without the distance map
    (``use_distance=False``, the texture-only ablation) the start is the plain average of the
    neighbours.

    Example:
        >>> import torch
        >>> from downsizenet_hub import DownsizeNet
        >>> net = DownsizeNet()  # the paper's default: 3 conv layers, 16 channels, bilinear taps
        >>> net(torch.rand(2, 3, 300, 300), size=(160, 160)).shape
        torch.Size([2, 3, 160, 160])
        >>> net(torch.rand(1, 3, 513, 513), scale_factor=0.35).shape
        torch.Size([1, 3, 179, 179])
    """

    def __init__(self, config: DownsizeNetConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        if config is None:
            config = DownsizeNetConfig(**overrides)
        elif overrides:
            config = DownsizeNetConfig.from_dict({**config.to_dict(), **overrides})
        if not isinstance(config, DownsizeNetConfig):
            raise TypeError(f"config must be a DownsizeNetConfig, got {type(config).__name__}.")
        self.config = config
        layers: list[nn.Module] = []
        in_channels = config.in_channels
        for _ in range(config.conv_layers):
            layers += [nn.Conv2d(in_channels, config.channels, 3, padding=1), nn.ReLU(inplace=True)]
            in_channels = config.channels
        self.texture = nn.Sequential(*layers)
        texture_channels = config.channels if config.conv_layers else 0
        self.head = nn.Conv2d(texture_channels + config.distance_channels, config.logit_channels, 1)
        self._texture_channels = texture_channels
        self._geometry_cache: OrderedDict[tuple[Any, ...], _Geometry] = OrderedDict()
        if config.init == "bilinear":
            self.reset_to_interpolation()

    # ------------------------------------------------------------------ construction helpers
    def _head_bias(self) -> torch.Tensor:
        assert self.head.bias is not None  # the 1x1 head is built with a bias
        return self.head.bias

    @torch.no_grad()
    def reset_to_interpolation(self) -> None:
        """Set the head so that the module starts as its classical resizer (see class docstring)."""
        self.head.weight.zero_()
        self._head_bias().zero_()
        if self._texture_channels:
            self.head.weight[:, : self._texture_channels].normal_(0.0, TEXTURE_HEAD_INIT_STD)

    @classmethod
    def as_bilinear(cls) -> DownsizeNet:
        """The paper's special case: exactly ``F.interpolate(mode="bilinear")``.

        No texture branch, the distance vector ``[(1-dx)(1-dy), dx(1-dy), (1-dx)dy, dxdy]``, a 1x1
        conv whose filter ``g_k`` selects its k-th entry, and no sigmoid.
        """
        net = cls(DownsizeNetConfig(conv_layers=0, coefficients="linear", init="random"))
        with torch.no_grad():
            net.head.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
            net._head_bias().zero_()
        return net

    @classmethod
    def as_antialiased(cls) -> DownsizeNet:
        """Exactly ``F.interpolate(mode="bilinear", antialias=True)`` when downsizing.

        The ``antialias`` neighbourhood with its triangle-filter prior and a zero head.
        """
        net = cls(DownsizeNetConfig(neighbourhood="antialias", conv_layers=0, init="random"))
        with torch.no_grad():
            net.head.weight.zero_()
            net._head_bias().zero_()
        return net

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        images: torch.Tensor,
        size: SizeArg | None = None,
        scale_factor: ScaleArg | None = None,
    ) -> torch.Tensor:
        """Resize ``images`` (``B x C x H x W``, float) to ``size=(h, w)`` or by ``scale_factor``.

        Returns ``B x C x h x w`` in the dtype of ``images`` (channels-last in memory).

        Inputs, each tested:

        * Any floating dtype. The texture branch reads the images in the dtype of the module's
          parameters (so float64 or float16 images work without autocast; under autocast its
          convolutions run in the autocast dtype), the coefficients are float32 at least, and the
          taps are mixed in the dtype of ``images``. Integer images: TypeError.
        * An empty batch (``B = 0``) gives an empty ``0 x C x h x w`` batch. An image with no
          pixels on a side (``H = 0`` or ``W = 0``): ValueError.
        * ``scale_factor`` must be finite and positive, and the output at least one pixel per
          side: ValueError otherwise.
        * A request whose estimated memory (:func:`downsizenet_hub.limits.resize_memory_bytes`)
          exceeds the limit of :mod:`downsizenet_hub.limits` raises
          :class:`~downsizenet_hub.limits.MemoryLimitError` (a ValueError) before allocating.
        * NaN or infinite pixels are not checked (that would cost a pass over the input): they
          propagate to the output pixels whose taps or texture receptive field (a square of
          ``2 * conv_layers + 1`` input pixels around the anchor) include them; every other output
          pixel is unaffected.
        """
        coefficients, geometry = self._coefficients(images, size, scale_factor)
        if images.shape[0] == 0:
            batch, channels = images.shape[:2]
            empty = images.new_empty((batch, channels, *geometry.out_size))
            return empty.contiguous(memory_format=_CHANNELS_LAST)
        return self._mix(images, coefficients, geometry)

    def coefficient_maps(
        self,
        images: torch.Tensor,
        size: SizeArg | None = None,
        scale_factor: ScaleArg | None = None,
    ) -> torch.Tensor:
        """The per-pixel mixing coefficients, ``(B, h, w, Ky, Kx)``, non-negative, summing to 1.

        ``Ky x Kx`` is the neighbourhood (2x2, 4x4, or the antialias support), ordered top to
        bottom and left to right.
        """
        coefficients, _ = self._coefficients(images, size, scale_factor)
        return coefficients

    def _coefficients(
        self,
        images: torch.Tensor,
        size: SizeArg | None,
        scale_factor: ScaleArg | None,
    ) -> tuple[torch.Tensor, _Geometry]:
        out_size, scales = resolve_output_size(images, size, scale_factor)
        if self.config.conv_layers and images.shape[1] != self.config.in_channels:
            raise ValueError(
                f"images have {images.shape[1]} channels but this DownsizeNet's texture branch "
                f"reads in_channels={self.config.in_channels}."
            )
        self._check_memory(images, out_size, scales, size, scale_factor)
        weight = self.head.weight
        geometry = self._geometry(images.shape[-2:], out_size, scales, weight.device)
        batch = images.shape[0]
        if batch == 0:
            ky, kx = geometry.taps
            return weight.new_empty((0, *out_size, ky, kx), dtype=torch.float32), geometry
        inputs = []
        if self._texture_channels:
            # The texture branch reads the images in the parameters' dtype (float64 or float16
            # images need no autocast); the taps are still mixed in the images' own dtype.
            inputs.append(self._pooled_texture(images.to(weight.dtype), geometry))
        if self.config.use_distance:
            distance = geometry.distance.to(dtype=inputs[0].dtype if inputs else weight.dtype)
            inputs.append(distance.unsqueeze(0).expand(batch, -1, -1))
        head_in = torch.cat(inputs, dim=2) if len(inputs) > 1 else inputs[0]
        # The 1x1 conv, applied to pixel vectors.
        logits = F.linear(head_in, weight.flatten(1).to(head_in.dtype), self.head.bias)
        # Coefficients are computed in float32 at least (autocast may hand back half precision).
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        return self._normalise(logits.view(batch, *out_size, -1), geometry), geometry

    def memory_estimate(
        self,
        shape: tuple[int, int, int, int],
        out_size: tuple[int, int],
        scales: tuple[float | None, float | None] = (None, None),
        *,
        itemsize: int = 4,
        autograd: bool = False,
    ) -> int:
        """Bytes a resize of a ``shape`` batch to ``out_size`` holds at once, a floor (see
        :func:`downsizenet_hub.limits.resize_memory_bytes`); ``scales`` as ``F.interpolate``'s."""
        batch, channels, height, width = shape
        taps = 1
        for in_size, out, scale in zip((height, width), out_size, scales, strict=True):
            if self.config.neighbourhood == "antialias":
                taps *= antialias_taps(coordinate_scale(in_size, out, scale))
            else:
                taps *= 4 if self.config.neighbourhood == "bicubic" else 2
        banded = not autograd and height * width >= INFERENCE_BANDING_MIN_PIXELS
        return resize_memory_bytes(
            batch,
            channels,
            (height, width),
            out_size,
            itemsize=itemsize,
            taps=taps,
            texture_channels=self._texture_channels,
            texture_layers=self.config.conv_layers,
            autograd=autograd,
            band_pixels=INFERENCE_BAND_PIXELS if banded else None,
        )

    def _check_memory(
        self,
        images: torch.Tensor,
        out_size: tuple[int, int],
        scales: tuple[float | None, float | None],
        size: SizeArg | None,
        scale_factor: ScaleArg | None,
    ) -> None:
        """MemoryLimitError, before anything is allocated, if this resize cannot fit."""
        estimate = self.memory_estimate(
            tuple(images.shape),  # type: ignore[arg-type]
            out_size,
            scales,
            itemsize=images.element_size(),
            autograd=torch.is_grad_enabled(),
        )
        asked = f"size={size!r}" if size is not None else f"scale_factor={scale_factor!r}"
        check_memory(f"DownsizeNet({asked}) on {_describe_resize(images, out_size)}", estimate)

    def _pooled_texture(self, images: torch.Tensor, geometry: _Geometry) -> torch.Tensor:
        """Floating pooling: the texture feature at each output pixel's top-left neighbour.

        Returns ``(B, h*w, channels)``. Without autograd and on large images, the texture branch
        runs on horizontal bands of the input (each with ``conv_layers`` rows of halo, so the
        result is exactly the same), which keeps peak memory near the size of the input instead
        of ``channels`` times it.
        """
        images = images.contiguous(memory_format=_CHANNELS_LAST)
        height, width = images.shape[-2:]
        if torch.is_grad_enabled() or height * width < INFERENCE_BANDING_MIN_PIXELS:
            features = _pixel_major(self._texture_maps(images))
            return features.index_select(1, geometry.anchor_index)
        halo = self.config.conv_layers
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
            band = self.texture(images[:, :, top:bottom])
            band = band.index_select(2, out_rows[start:stop] - top)
            band = band.index_select(3, geometry.anchor_cols)
            pooled.append(band.permute(0, 2, 3, 1).reshape(band.shape[0], -1, band.shape[1]))
            start = stop
        return torch.cat(pooled, dim=1)

    def _texture_maps(self, images: torch.Tensor) -> torch.Tensor:
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
            return self.texture(images)
        features = images
        for layer in self.texture:
            if isinstance(layer, nn.Conv2d):  # each conv is followed by its ReLU (see __init__)
                features = _conv3x3_relu(features, layer.weight, layer.bias)
        return features

    def _normalise(self, logits: torch.Tensor, geometry: _Geometry) -> torch.Tensor:
        """Logits ``(B, h, w, L)`` to convex coefficients ``(B, h, w, Ky, Kx)``."""
        batch, h, w, _ = logits.shape
        ky, kx = geometry.taps
        if geometry.grid_y is not None and geometry.grid_x is not None:
            grid = logits.view(batch, h, w, ANTIALIAS_GRID, ANTIALIAS_GRID)
            grid_y, grid_x = geometry.grid_y.to(grid.dtype), geometry.grid_x.to(grid.dtype)
            taps = torch.einsum("hkg,wlq,bhwgq->bhwkl", grid_y, grid_x, grid)
        else:
            taps = logits.view(batch, h, w, ky, kx)
        if self.config.coefficients == "linear":
            weights = taps.clamp_min(0.0) * geometry.prior * geometry.mask
            total = weights.sum(dim=(3, 4), keepdim=True)
            uniform = geometry.mask / geometry.mask.sum(dim=(2, 3), keepdim=True)
            # A linear head can output all zeros: fall back to the plain average of the taps.
            safe = torch.where(total > 0, total, torch.ones_like(total))
            return torch.where(total > 0, weights / safe, uniform)
        # sigmoid / softmax, in log space so that no logit can underflow the normalisation:
        # log(prior * act(z)) is shifted by its maximum, which is finite because the prior has
        # mass on at least one real tap; the largest term is then exactly 1.
        log_act = F.logsigmoid(taps) if self.config.coefficients == "sigmoid" else taps
        scores = log_act + geometry.log_prior
        weights = torch.exp(scores - scores.amax(dim=(3, 4), keepdim=True))
        return weights / weights.sum(dim=(3, 4), keepdim=True)

    @staticmethod
    def _mix(images: torch.Tensor, coefficients: torch.Tensor, geometry: _Geometry) -> torch.Tensor:
        """Gather every tap's pixel vector and take the convex mix: ``(B, C, h, w)``."""
        pixels = _pixel_major(images)
        batch, channels = images.shape[:2]
        h, w = geometry.out_size
        taps = pixels.index_select(1, geometry.taps_index)  # (B, h*w*K, C)
        taps = taps.view(batch, h * w, -1, channels)
        weights = coefficients.reshape(batch, h * w, 1, -1).to(taps.dtype)
        out = torch.matmul(weights, taps).view(batch, h, w, channels)
        return out.permute(0, 3, 1, 2).to(images.dtype)

    # ------------------------------------------------------------------ geometry
    def _geometry(
        self,
        in_size: torch.Size,
        out_size: tuple[int, int],
        scales: tuple[float | None, float | None],
        device: torch.device,
    ) -> _Geometry:
        key = (tuple(in_size), out_size, scales, device)
        cached = self._geometry_cache.get(key)
        if cached is not None:
            self._geometry_cache.move_to_end(key)
            return cached
        geometry = _build_geometry(self.config, tuple(in_size), out_size, scales, device)
        self._geometry_cache[key] = geometry
        if len(self._geometry_cache) > _GEOMETRY_CACHE_SIZE:
            self._geometry_cache.popitem(last=False)
        return geometry

    def _apply(self, fn: Any, recurse: bool = True) -> DownsizeNet:
        self._geometry_cache.clear()  # cached index maps live on the old device
        return cast(DownsizeNet, super()._apply(fn, recurse))

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"neighbourhood={c.neighbourhood}, conv_layers={c.conv_layers}, channels={c.channels}, "
            f"use_distance={c.use_distance}, coefficients={c.coefficients}, "
            f"distance_prior={c.distance_prior}"
        )

    # ------------------------------------------------------------------ storage (see hub/)
    def save_pretrained(self, save_directory: str, **kwargs: Any) -> Any:
        """Write ``model.safetensors``, ``config.json`` and a model card to ``save_directory``;
        return the folder. Keywords: ``record`` (a hub.TrainingRecord), ``name`` (how the card
        says to load it). See :func:`downsizenet_hub.hub.save_pretrained`."""
        from downsizenet_hub import hub  # storage lives in hub/; imported lazily on purpose

        return hub.save_pretrained(self, save_directory, **kwargs)

    @classmethod
    def from_pretrained(cls, ref: str, **kwargs: Any) -> DownsizeNet:
        """Load a published resizer, strictly, in eval mode: a directory, a local-hub name, a
        shipped resizer, or a Hugging Face repo id ``owner/name[@revision]``. Keywords:
        ``revision``, ``device``, ``cache_dir``, ``token``. See
        :func:`downsizenet_hub.hub.from_pretrained`."""
        from downsizenet_hub import hub

        return hub.from_pretrained(ref, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
        """Upload this resizer to the Hugging Face Hub (safetensors, config.json, model card);
        return the commit URL. Keywords: ``record``, ``private``, ``revision``, ``force``
        (replace a resizer already there), ``token``. See
        :func:`downsizenet_hub.hub.push_to_hub`."""
        from downsizenet_hub import hub

        return hub.push_to_hub(self, repo_id, **kwargs)


def resolve_output_size(
    images: torch.Tensor, size: SizeArg | None, scale_factor: ScaleArg | None
) -> tuple[tuple[int, int], tuple[float | None, float | None]]:
    """Validate a resize call and return ``(h, w)`` plus the scale factors that set the geometry.

    Shared by every resizer so that bad input gets the same one-sentence errors everywhere.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}.")
    if images.dim() != 4:
        raise ValueError(
            f"images must be a 4-D tensor B x C x H x W, got shape {tuple(images.shape)}."
        )
    if not images.is_floating_point():
        raise TypeError(f"images must have a floating dtype, got {images.dtype}.")
    if (size is None) == (scale_factor is None):
        raise ValueError("give exactly one of size=(h, w) or scale_factor=s.")
    batch, channels, in_h, in_w = images.shape
    scales: tuple[float | None, float | None] = (None, None)
    if min(in_h, in_w) < 1:
        raise ValueError(f"images must have at least one pixel per side, got {in_h}x{in_w}.")
    if size is not None:
        pair = _pair(size, "size")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair):
            raise ValueError(f"size must be positive integers (h, w), got {size!r}.")
        out = (int(pair[0]), int(pair[1]))
        asked = f"size={size!r}"
    else:
        factors = _pair(scale_factor, "scale_factor")
        sy, sx = (check_scale_factor(v, "scale_factor") for v in factors)
        out, scales = (math.floor(in_h * sy), math.floor(in_w * sx)), (sy, sx)
        if min(out) < 1:
            raise ValueError(
                f"scale_factor={scale_factor!r} shrinks a {in_h}x{in_w} image to "
                f"{out[0]}x{out[1]}; the output needs at least one pixel per side."
            )
        asked = f"scale_factor={scale_factor!r}"
    if batch > 0:  # an empty batch resizes to an empty batch and allocates nothing
        estimate = resize_memory_bytes(
            batch, channels, (in_h, in_w), out, itemsize=images.element_size(), taps=1
        )
        check_memory(f"{asked} ({_describe_resize(images, out)})", estimate)
    return out, scales


def resize_memory_estimate(
    resizer: nn.Module,
    shape: tuple[int, int, int, int],
    size: SizeArg | None = None,
    scale_factor: ScaleArg | None = None,
    *,
    itemsize: int = 4,
    autograd: bool = False,
) -> int:
    """Bytes that resizing a ``shape`` batch with ``resizer`` holds at once, inputs included (a
    floor): :meth:`DownsizeNet.memory_estimate` for a DownsizeNet, the output and one gather for
    any other resizer. Validates ``size`` / ``scale_factor`` as :func:`resolve_output_size` does,
    without its memory check (the caller decides what to refuse)."""
    probe = torch.empty(0, *shape[1:], device="meta")
    out, scales = resolve_output_size(probe, size, scale_factor)
    if isinstance(resizer, DownsizeNet):
        resize = resizer.memory_estimate(shape, out, scales, itemsize=itemsize, autograd=autograd)
    else:
        resize = resize_memory_bytes(*shape[:2], shape[2:], out, itemsize=itemsize, taps=1)
    return math.prod(shape) * itemsize + resize


def _describe_resize(images: torch.Tensor, out: tuple[int, int]) -> str:
    """``"a 2x3x300x300 batch to 160x160"``."""
    return f"a {'x'.join(str(v) for v in images.shape)} batch to {out[0]}x{out[1]}"


def _pair(value: Any, name: str) -> tuple[Any, Any]:
    if isinstance(value, (tuple, list, torch.Size)):
        if len(value) != 2:
            raise ValueError(f"{name} must be one value or a pair (h, w), got {value!r}.")
        return value[0], value[1]
    return value, value


def _build_geometry(
    config: DownsizeNetConfig,
    in_size: tuple[int, ...],
    out_size: tuple[int, int],
    scales: tuple[float | None, float | None],
    device: torch.device,
) -> _Geometry:
    rows = axis_sampling(config.neighbourhood, in_size[0], out_size[0], scales[0])
    cols = axis_sampling(config.neighbourhood, in_size[1], out_size[1], scales[1])
    ky, kx = rows.index.shape[1], cols.index.shape[1]
    width = in_size[1]

    def outer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # (h, Ky), (w, Kx) -> (h,w,Ky,Kx)
        return a[:, None, :, None] * b[None, :, None, :]

    grid_y: torch.Tensor | None = None
    grid_x: torch.Tensor | None = None
    if config.neighbourhood == "antialias":
        distance = _distance_map(_bilinear_pair(rows), _bilinear_pair(cols))
        grid_y = _hat_weights(rows.position, ANTIALIAS_GRID).float().to(device)
        grid_x = _hat_weights(cols.position, ANTIALIAS_GRID).float().to(device)
    else:
        distance = _distance_map(rows.weight, cols.weight)
    mask = outer(rows.valid.double(), cols.valid.double()).float()
    prior = (
        outer(rows.prior, cols.prior).float() if config.distance_prior else torch.ones_like(mask)
    )
    taps_index = rows.index[:, None, :, None] * width + cols.index[None, :, None, :]
    anchor_index = rows.anchor[:, None] * width + cols.anchor[None, :]
    return _Geometry(
        taps_index=taps_index.reshape(-1).to(device),
        anchor_index=anchor_index.reshape(-1).to(device),
        distance=distance.float().to(device),
        log_prior=(prior * mask).log().to(device),
        prior=prior.to(device),
        mask=mask.to(device),
        grid_y=grid_y,
        grid_x=grid_x,
        out_size=out_size,
        taps=(ky, kx),
        anchor_rows=rows.anchor.to(device),
        anchor_cols=cols.anchor.to(device),
    )


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


def _pixel_major(images: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` as ``(B, H*W, C)`` pixel vectors (a view when already channels-last)."""
    batch, channels = images.shape[:2]
    return images.permute(0, 2, 3, 1).reshape(batch, -1, channels)


def _bilinear_pair(axis: AxisSampling) -> torch.Tensor:
    return torch.stack([1 - axis.offset, axis.offset], dim=1)


def _distance_map(weight_y: torch.Tensor, weight_x: torch.Tensor) -> torch.Tensor:
    """The relative-distance vectors ``(h*w, Ky*Kx)``: products ``wy[a] * wx[b]``, row-major.

    For 2 taps this is the paper's ``[(1-dx)(1-dy), dx(1-dy), (1-dx)dy, dxdy]``.
    """
    products = weight_y[:, None, :, None] * weight_x[None, :, None, :]  # (h, w, Ky, Kx)
    h, w, ky, kx = products.shape
    return products.reshape(h * w, ky * kx)
