"""The Talebi-Milanfar learned resizer, a baseline for DownsizeNet: :class:`TalebiResizer`.

From Talebi and Milanfar, "Learning to Resize Images for Computer Vision Tasks" (ICCV 2021): a
bilinear skip path plus a learned residual. Unlike a DownsizeNet, nothing constrains the output to
be an image (its pixels are not convex mixes of input pixels); that is the difference the study
measures (see :mod:`downsizenet_hub.experiments.output_stats`).

Imports nothing of this package but its torch-free config (:mod:`.baseline_config`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from downsizenet_hub.resizing.baseline_config import TalebiConfig, resolve_config
from downsizenet_hub.resizing.target import resolve_output_size

__all__ = ["NEGATIVE_SLOPE", "TalebiConfig", "TalebiResizer", "check_resize_call"]

#: Negative slope of every LeakyReLU (the Keras example's ``LeakyReLU(0.2)``).
NEGATIVE_SLOPE = 0.2


def check_resize_call(
    images: torch.Tensor, channels: int, size: object, scale_factor: object
) -> None:
    """ValueError in one sentence unless ``images`` is ``B x channels x H x W`` and the target is
    a valid request (the core's one check, :func:`.target.resolve_output_size`)."""
    resolve_output_size(images, size, scale_factor)  # type: ignore[arg-type]
    if images.shape[1] != channels:
        raise ValueError(f"images must be B x {channels} x H x W, got {tuple(images.shape)}.")


def _conv_bn(filters: int, activation: bool) -> nn.Sequential:
    """3x3 convolution (no bias: batch norm follows), batch norm, optional LeakyReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(filters, filters, 3, padding=1, bias=False),
        nn.BatchNorm2d(filters),
    ]
    if activation:
        layers.append(nn.LeakyReLU(NEGATIVE_SLOPE))
    return nn.Sequential(*layers)


class _ResidualBlock(nn.Module):
    """``x + BN(conv(LeakyReLU(BN(conv(x)))))``, no activation after the sum (as in the example)."""

    def __init__(self, filters: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(filters, True), _conv_bn(filters, False))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.body(features)


class TalebiResizer(nn.Module):
    """Learned resizer of Talebi and Milanfar: bilinear resize plus a learned residual.

    Architecture (the paper's figure as implemented in the public Keras example, Sayak Paul,
    "Learning to Resize in Computer Vision", keras.io, checked against it):

    1. at full resolution: 7x7 conv (``filters``, with bias), LeakyReLU(0.2), 1x1 conv (with
       bias), LeakyReLU(0.2), batch norm;
    2. bilinear resize of those features to the target size (the "bottleneck");
    3. ``residual_blocks`` blocks of [3x3 conv, BN, LeakyReLU, 3x3 conv, BN] + identity, the
       convs without bias since BN follows;
    4. a 3x3 conv (no bias) and BN, added to the bottleneck (a skip around the blocks);
    5. an ``output_kernel`` x ``output_kernel`` conv to image channels (with bias), added to the
       bilinearly resized input.

    Defaults: 16 filters, 1 residual block, 7x7 output conv, LeakyReLU slope 0.2: all from the
    Keras example (``get_learnable_resizer(filters=16, num_res_blocks=1)``, which notes that more
    residual blocks may be used); the paper calls the filters n and the blocks r. A shorter
    summary of the architecture (this project's issue 20) ends in a 3x3 conv and leaves out the
    3x3 conv + BN skip of step 4; ``output_kernel=3`` gives that last layer, step 4 is kept as in
    the example.
    At the defaults: 12,035 parameters, the example's reported 12,163 less the 128 batch-norm
    moving statistics that Keras counts as parameters.

    Conventions: input ``(B, C, H, W)`` in the parameters' dtype, any range (no clamping: the
    output is not constrained to the input's range), output ``(B, C, h, w)``. The skip path is
    ``F.interpolate(mode="bilinear", align_corners=False)`` with the given ``size`` or
    ``scale_factor``, and the features are resized with the same arguments, so output size and
    sampling geometry are exactly ``F.interpolate``'s (output ``floor(H * s)`` and coordinate
    step ``1 / s`` for a scale factor). Works for any size or fractional scale, up or down.

    Starting point: with ``init="bilinear"`` (the default) the output convolution starts at zero
    (weights and bias), so the module's output equals ``F.interpolate(mode="bilinear")`` exactly,
    as a DownsizeNet starts as bilinear. At that start only the output convolution gets a
    gradient; the layers before it get theirs from the first step that moves it off zero.
    Batch norm normalises over the batch in training mode and uses running statistics in eval
    mode (freeze with ``eval()`` and ``requires_grad_(False)``).

    Example:
        >>> import torch
        >>> resizer = TalebiResizer()
        >>> resizer(torch.rand(2, 3, 300, 300), size=(160, 160)).shape
        torch.Size([2, 3, 160, 160])
        >>> resizer(torch.rand(1, 3, 513, 513), scale_factor=0.3).shape
        torch.Size([1, 3, 153, 153])
    """

    #: The classical resizer it starts as (with the default init): what ``pretrain`` measures how
    #: far the trained module moved from.
    starts_as: ClassVar[str] = "bilinear"

    def __init__(self, config: TalebiConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        config = resolve_config(TalebiConfig, config, overrides)
        self.config = config
        n = config.filters
        self.stem = nn.Sequential(
            nn.Conv2d(config.channels, n, 7, padding=3),
            nn.LeakyReLU(NEGATIVE_SLOPE),
            nn.Conv2d(n, n, 1),
            nn.LeakyReLU(NEGATIVE_SLOPE),
            nn.BatchNorm2d(n),
        )
        self.blocks = nn.Sequential(*(_ResidualBlock(n) for _ in range(config.residual_blocks)))
        self.projection = _conv_bn(n, activation=False)
        kernel = config.output_kernel
        self.output = nn.Conv2d(n, config.channels, kernel, padding=kernel // 2)
        if config.init == "bilinear":
            self.reset_to_bilinear()

    @classmethod
    def from_config(cls, config: TalebiConfig | dict[str, Any]) -> TalebiResizer:
        """Build from a :class:`TalebiConfig` or its dict (config.json)."""
        if isinstance(config, dict):
            config = TalebiConfig.from_dict(config)
        return cls(config)

    @torch.no_grad()
    def reset_to_bilinear(self) -> None:
        """Zero the output convolution, so that the module computes bilinear resizing exactly."""
        self.output.weight.zero_()
        assert self.output.bias is not None  # built with a bias
        self.output.bias.zero_()

    def forward(
        self,
        images: torch.Tensor,
        size: int | tuple[int, int] | None = None,
        scale_factor: float | tuple[float, float] | None = None,
    ) -> torch.Tensor:
        """Resize ``images`` (``B x C x H x W``, float) to ``size=(h, w)`` or by ``scale_factor``.

        Exactly one of ``size`` and ``scale_factor``: ValueError otherwise, and for images that
        are not 4-D or whose channels differ from ``config.channels``. Returns ``B x C x h x w``.
        """
        check_resize_call(images, self.config.channels, size, scale_factor)
        geometry: dict[str, Any] = {"mode": "bilinear", "align_corners": False}
        if size is not None:
            geometry["size"] = size
        else:
            geometry["scale_factor"] = scale_factor
        skip = F.interpolate(images, **geometry)
        bottleneck = F.interpolate(self.stem(images), **geometry)
        features = bottleneck + self.projection(self.blocks(bottleneck))
        return skip + self.output(features)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"filters={c.filters}, residual_blocks={c.residual_blocks}, "
            f"output_kernel={c.output_kernel}"
        )
