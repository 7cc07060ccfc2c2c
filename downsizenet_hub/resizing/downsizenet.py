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

Where the pieces live: the architecture as data in :mod:`.config`; which input pixels feed
each output pixel in :mod:`.sampling` (one axis) and :mod:`.geometry` (the 2-D layout the module
consumes); the size or scale factor asked for, checked once, in :mod:`.target`; the head's
logits, the normalisation and the mix as functions in :mod:`.functional`. This module holds the
learned part (the texture branch and the 1x1 head's parameters), checks each call and wires the
functions together; without autograd on the CPU it keeps its large temporaries from call to call
(:mod:`.workspace`, :meth:`DownsizeNet.release_workspace`). Its forward traces into one graph:
``torch._dynamo.explain`` finds no break, and ``resizer.compile()`` keeps the memory check (it
reads only the environment and the physical memory read at import). It knows nothing of
storage: a published resizer is loaded by :func:`downsizenet_hub.registry.create_resizer`, and
the ``DownsizeNet`` exported by the package root adds ``from_pretrained`` / ``save_pretrained`` /
``push_to_hub`` on top of this class (see :mod:`downsizenet_hub.hub.model`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, cast

import torch
from torch import nn

from downsizenet_hub.resizing.anchors import BandCache, anchor_rows_pay, anchors_pay
from downsizenet_hub.resizing.config import DownsizeNetConfig
from downsizenet_hub.resizing.functional import head_logits, mix, normalise
from downsizenet_hub.resizing.geometry import Geometry, build_geometry
from downsizenet_hub.resizing.limits import check_memory, resize_memory_bytes
from downsizenet_hub.resizing.sampling import antialias_taps, coordinate_scale
from downsizenet_hub.resizing.target import (
    ResizeTarget,
    ScaleArg,
    SizeArg,
    describe_resize,
    resize_target,
    resolve_output_size,
)
from downsizenet_hub.resizing.texture import (
    INFERENCE_BAND_PIXELS,
    INFERENCE_BANDING_MIN_PIXELS,
    inference_call_images,
    pooled_texture,
    pooled_texture_reference,
)
from downsizenet_hub.resizing.workspace import Workspace

#: Std of the texture part of the 1x1 head at ``init="bilinear"``: small enough that the start is
#: bilinear to ~1e-4, non-zero so that gradients reach the texture branch from the first step.
TEXTURE_HEAD_INIT_STD = 1e-4
_GEOMETRY_CACHE_SIZE = 16
_CHANNELS_LAST = torch.channels_last


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
        self._geometry_cache: OrderedDict[tuple[Any, ...], Geometry] = OrderedDict()
        #: Reuse the geometry of the last shapes seen (keyed by shape). An export with symbolic
        #: shapes turns this off, so that the graph rebuilds the geometry from the shapes.
        self.cache_geometry = True
        self._band_cache = BandCache()  # the texture branch's anchor grids, per geometry
        #: Keep the large temporaries of inference calls on the CPU from call to call (see
        #: :mod:`.workspace`; :meth:`release_workspace` frees them). False: allocate afresh.
        self.reuse_temporaries = True
        self._workspace = Workspace()
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
        * A request whose estimated memory (:func:`.limits.resize_memory_bytes`) exceeds the
          limit of :mod:`downsizenet_hub.resizing.limits` raises
          :class:`~.limits.MemoryLimitError` (a ValueError) before allocating.
        * NaN or infinite pixels are not checked (that would cost a pass over the input): they
          propagate to the output pixels whose taps or texture receptive field (a square of
          ``2 * conv_layers + 1`` input pixels around the anchor) include them; every other output
          pixel is unaffected.
        """
        return self.resample(images, self.prepare(images, size, scale_factor))

    def prepare(
        self,
        images: torch.Tensor,
        size: SizeArg | None = None,
        scale_factor: ScaleArg | None = None,
    ) -> Geometry:
        """Check a resize call (images, target, channels, memory) and return its sampling
        geometry: cached per shape, or built afresh when :attr:`cache_geometry` is False."""
        target, out_size = resolve_output_size(images, size, scale_factor)
        if self.config.conv_layers and images.shape[1] != self.config.in_channels:
            raise ValueError(
                f"images have {images.shape[1]} channels but this DownsizeNet's texture branch "
                f"reads in_channels={self.config.in_channels}."
            )
        self._check_memory(images, out_size, target)
        return self.geometry(images.shape[-2:], out_size, target.scales, self.head.weight.device)

    def resample(self, images: torch.Tensor, geometry: Geometry) -> torch.Tensor:
        """Resize ``images`` with the sampling ``geometry`` of :meth:`prepare` (unchecked)."""
        if images.shape[0] == 0:
            batch, channels = images.shape[:2]
            empty = images.new_empty((batch, channels, *geometry.out_size))
            return empty.contiguous(memory_format=_CHANNELS_LAST)
        workspace = self._workspace if self.reuse_temporaries else None
        coefficients = self._coefficients(images, geometry, workspace)
        return mix(images, coefficients, geometry, workspace=workspace)

    def release_workspace(self) -> None:
        """Free the temporaries kept from earlier inference calls (see :mod:`.workspace`); the
        next call allocates them again."""
        self._workspace.release()

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
        return self.coefficients(images, self.prepare(images, size, scale_factor))

    def coefficients(self, images: torch.Tensor, geometry: Geometry) -> torch.Tensor:
        """The mixing coefficients ``(B, h, w, Ky, Kx)`` for ``images`` sampled with ``geometry``
        (from :meth:`prepare` or :func:`~downsizenet_hub.resizing.geometry.build_geometry`)."""
        return self._coefficients(images, geometry, None)

    def _coefficients(
        self, images: torch.Tensor, geometry: Geometry, workspace: Workspace | None
    ) -> torch.Tensor:
        weight = self.head.weight
        batch = images.shape[0]
        if batch == 0:
            ky, kx = geometry.taps
            return weight.new_empty((0, *geometry.out_size, ky, kx), dtype=torch.float32)
        pooled: torch.Tensor | None = None
        if self._texture_channels:
            # The texture branch reads the images in the parameters' dtype (float64 or float16
            # images need no autocast); the taps are still mixed in the images' own dtype.
            pooled = self._pooled_texture(images.to(weight.dtype), geometry, workspace)
        logits = head_logits(
            pooled,
            geometry,
            weight.flatten(1),
            self.head.bias,
            batch=batch,
            use_distance=self.config.use_distance,
        )
        return normalise(
            logits.view(batch, *geometry.out_size, -1),
            geometry,
            self.config.coefficients,
            in_place=not torch.is_grad_enabled(),
            workspace=workspace,
        )

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
        :func:`.limits.resize_memory_bytes`); ``scales`` as ``F.interpolate``'s."""
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
            texture_images=None if autograd else inference_call_images(height, width),
            anchor_grid=anchors_pay((height, width), out_size),
            anchor_rows=not autograd and anchor_rows_pay((height, width), out_size),
        )

    def _check_memory(
        self,
        images: torch.Tensor,
        out_size: tuple[int, int],
        target: ResizeTarget,
    ) -> None:
        """MemoryLimitError, before anything is allocated, if this resize cannot fit."""
        estimate = self.memory_estimate(
            tuple(images.shape),  # type: ignore[arg-type]
            out_size,
            target.scales,
            itemsize=images.element_size(),
            autograd=torch.is_grad_enabled(),
        )
        check_memory(f"DownsizeNet({target}) on {describe_resize(images, out_size)}", estimate)

    def _pooled_texture(
        self, images: torch.Tensor, geometry: Geometry, workspace: Workspace | None = None
    ) -> torch.Tensor:
        """Floating pooling of the texture branch's features, ``(B, h*w, channels)``."""
        layers = self.config.conv_layers
        return pooled_texture(
            self.texture, layers, images, geometry, self._band_cache, workspace=workspace
        )

    def _pooled_texture_reference(
        self, images: torch.Tensor, geometry: Geometry, workspace: Workspace | None = None
    ) -> torch.Tensor:
        """Whole maps, then a gather: the reference the tests hold the fast paths to (it keeps
        no temporaries: ``workspace`` is ignored)."""
        return pooled_texture_reference(self.texture, images, geometry)

    # ------------------------------------------------------------------ geometry
    def geometry(
        self,
        in_size: torch.Size,
        out_size: tuple[int, int],
        scales: tuple[float | None, float | None],
        device: torch.device,
    ) -> Geometry:
        """The sampling geometry of one resize on ``device``, cached per shape (see
        :attr:`cache_geometry`)."""
        if not self.cache_geometry:
            return build_geometry(self.config, tuple(in_size), out_size, scales, device)
        key = (tuple(in_size), out_size, scales, device)
        cached = self._geometry_cache.get(key)
        if cached is not None:
            self._geometry_cache.move_to_end(key)
            return cached
        geometry = build_geometry(self.config, tuple(in_size), out_size, scales, device)
        self._geometry_cache[key] = geometry
        if len(self._geometry_cache) > _GEOMETRY_CACHE_SIZE:
            self._geometry_cache.popitem(last=False)
        return geometry

    def _apply(self, fn: Any, recurse: bool = True) -> DownsizeNet:
        self._geometry_cache.clear()  # cached index maps live on the old device
        self._band_cache.clear()
        self._workspace.release()
        return cast(DownsizeNet, super()._apply(fn, recurse))

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"neighbourhood={c.neighbourhood}, conv_layers={c.conv_layers}, channels={c.channels}, "
            f"use_distance={c.use_distance}, coefficients={c.coefficients}, "
            f"distance_prior={c.distance_prior}"
        )


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
    any other resizer. Checks ``size`` / ``scale_factor`` (:func:`.target.resize_target`), not
    the memory itself (the caller decides what to refuse)."""
    target = resize_target(size, scale_factor)
    out = target.output_size((shape[2], shape[3]))
    if isinstance(resizer, DownsizeNet):
        resize = resizer.memory_estimate(
            shape, out, target.scales, itemsize=itemsize, autograd=autograd
        )
    else:
        resize = resize_memory_bytes(*shape[:2], shape[2:], out, itemsize=itemsize, taps=1)
    return math.prod(shape) * itemsize + resize
