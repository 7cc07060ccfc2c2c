"""The architecture of a DownsizeNet as plain data: :class:`DownsizeNetConfig`.

Free of torch, so that reading a published resizer's ``config.json`` (``downsizenet hub list``,
``hub show``) does not pay torch's import time. :mod:`.downsizenet` builds the module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, TypeVar

Neighbourhood = Literal["bilinear", "bicubic", "antialias"]
Coefficients = Literal["sigmoid", "softmax", "linear"]
Init = Literal["bilinear", "random"]

NEIGHBOURHOODS: tuple[str, ...] = ("bilinear", "bicubic", "antialias")
_COEFFICIENTS = ("sigmoid", "softmax", "linear")
_INITS = ("bilinear", "random")
#: The antialias head predicts logits on this grid over the filter support, per axis.
ANTIALIAS_GRID = 4


@dataclass
class DownsizeNetConfig:
    """Architecture of a :class:`DownsizeNet`. JSON-serialisable via :meth:`to_dict`.

    Defaults are the paper's: 3 conv layers of 16 channels, distance map on, sigmoid coefficients.
    """

    # Which input pixels each output pixel mixes: "bilinear" (2x2, the paper), "bicubic" (4x4,
    # distance vector from PyTorch's cubic kernel, a = -0.75, the paper's section 5.1), or
    # "antialias" (the triangle filter widened by 1/scale, so every input pixel counts below x0.5).
    neighbourhood: Neighbourhood = "bilinear"
    # Number of 3x3 conv layers in the texture branch (0 to 5); 0 means no texture branch.
    conv_layers: int = 3
    # Channels of each texture conv layer.
    channels: int = 16
    # Image channels the texture branch reads (only used when conv_layers > 0).
    in_channels: int = 3
    # Feed the relative-distance map to the 1x1 head; False is the paper's "texture only" ablation.
    use_distance: bool = True
    # "sigmoid" then normalise to sum 1 (the paper); "softmax" (its footnote); "linear" (the
    # paper's bilinear special case: the 1x1 output used directly, clamped at 0 and renormalised).
    coefficients: Coefficients = "sigmoid"
    # Multiply the learned coefficients by the neighbourhood's classical convex weights (bilinear,
    # or the triangle filter for antialias) before normalising, so that equal logits reproduce the
    # classical resizer. None: on whenever possible (use_distance and a sigmoid/softmax head).
    distance_prior: bool | None = None
    # "bilinear": start as the classical resizer (see DownsizeNet); "random": PyTorch defaults.
    init: Init = "bilinear"

    def __post_init__(self) -> None:
        _check_choice("neighbourhood", self.neighbourhood, NEIGHBOURHOODS)
        _check_choice("coefficients", self.coefficients, _COEFFICIENTS)
        _check_choice("init", self.init, _INITS)
        _check_int("conv_layers", self.conv_layers, 0, 5)
        _check_int("channels", self.channels, 1, 1024)
        _check_int("in_channels", self.in_channels, 1, 1024)
        if not isinstance(self.use_distance, bool):
            raise TypeError(f"use_distance must be a bool, got {self.use_distance!r}.")
        if self.conv_layers == 0 and not self.use_distance:
            raise ValueError(
                "conv_layers=0 with use_distance=False leaves the head nothing to read; "
                "use conv_layers >= 1 or use_distance=True."
            )
        prior_possible = self.use_distance and self.coefficients != "linear"
        if self.distance_prior is None:
            self.distance_prior = prior_possible
        elif not isinstance(self.distance_prior, bool):
            raise TypeError(f"distance_prior must be a bool or None, got {self.distance_prior!r}.")
        elif self.distance_prior and not prior_possible:
            raise ValueError(
                "distance_prior=True needs use_distance=True and coefficients 'sigmoid' or "
                "'softmax'."
            )

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the fields, for config.json."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DownsizeNetConfig:
        """Build from a dict, refusing unknown keys (a typo must not pass silently)."""
        return config_from_dict(cls, data, "DownsizeNet config")

    @property
    def distance_channels(self) -> int:
        """Channels of the relative-distance map (the classical weights of a 2x2 or 4x4 window)."""
        if not self.use_distance:
            return 0
        return 16 if self.neighbourhood == "bicubic" else 4

    @property
    def logit_channels(self) -> int:
        """Channels the 1x1 head outputs: one per neighbour, or a 4x4 grid for antialias."""
        if self.neighbourhood == "bilinear":
            return 4
        return 16 if self.neighbourhood == "bicubic" else ANTIALIAS_GRID * ANTIALIAS_GRID


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}.")


_ConfigT = TypeVar("_ConfigT")


def config_from_dict(cls: type[_ConfigT], data: object, what: str) -> _ConfigT:
    """Build the config dataclass ``cls`` from a dict, refusing unknown keys (a typo must not pass
    silently); ``what`` names it in errors ("Talebi config"). The one dict-to-config helper:
    DownsizeNet's config, the learned baselines', TrainConfig and the hub's training record use
    it; a missing field is the dataclass's TypeError."""
    if not isinstance(data, dict):
        raise TypeError(f"a {what} must be a JSON object, got {type(data).__name__}.")
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {what} key(s) {unknown}; expected some of {sorted(known)}.")
    return cls(**data)
