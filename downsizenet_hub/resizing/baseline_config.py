"""The learned baselines' architectures as plain data: TalebiConfig and StridedConfig.

Free of torch, like :mod:`.config`, so that reading a published baseline's ``config.json``
(``downsizenet hub list``, ``hub show``) does not pay torch's import time. The modules are
:class:`~downsizenet_hub.resizing.talebi.TalebiResizer` and
:class:`~downsizenet_hub.resizing.strided.StridedResizer`, which re-export these names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeVar

from downsizenet_hub.resizing.config import _check_choice, _check_int, config_from_dict

TalebiInit = Literal["bilinear", "random"]
_TALEBI_INITS = ("bilinear", "random")
StridedInit = Literal["area", "random"]
_STRIDED_INITS = ("area", "random")
_Config = TypeVar("_Config")


def resolve_config(
    cls: type[_Config], config: _Config | None, overrides: dict[str, Any]
) -> _Config:
    """``config`` with ``overrides`` applied (a fresh default config when None), validated; an
    unknown override is a ValueError naming it."""
    if config is None:
        return config_from_dict(cls, overrides, cls.__name__)
    if not isinstance(config, cls):
        raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}.")
    if overrides:
        merged = {**asdict(config), **overrides}  # type: ignore[call-overload]
        return config_from_dict(cls, merged, cls.__name__)
    return config


@dataclass(frozen=True)
class TalebiConfig:
    """Architecture of a :class:`~.talebi.TalebiResizer`; JSON via :meth:`to_dict`.

    Defaults follow the public Keras example (Sayak Paul, "Learning to Resize in Computer
    Vision", keras.io), which implements the paper's figure: 16 filters, 1 residual block, a 7x7
    output convolution.
    """

    # Image channels in and out (the skip path adds the residual to the resized image).
    channels: int = 3
    # Filters of every intermediate convolution (the paper's n; 16 in the Keras example).
    filters: int = 16
    # Residual blocks at the target resolution (the paper's r; 1 in the Keras example, which
    # notes that more may be used; the issue compares 1 and 2).
    residual_blocks: int = 1
    # Kernel of the last convolution, features -> image channels (7 in the Keras example).
    output_kernel: int = 7
    # "bilinear": the last convolution starts at zero, so the module starts exactly as bilinear;
    # "random": PyTorch's default initialisation everywhere (the Keras example's behaviour).
    init: TalebiInit = "bilinear"

    def __post_init__(self) -> None:
        _check_int("channels", self.channels, 1, 1024)
        _check_int("filters", self.filters, 1, 1024)
        _check_int("residual_blocks", self.residual_blocks, 1, 16)
        _check_int("output_kernel", self.output_kernel, 1, 15)
        if self.output_kernel % 2 == 0:
            raise ValueError(
                f"output_kernel must be odd (same-size padding), got {self.output_kernel}."
            )
        _check_choice("init", self.init, _TALEBI_INITS)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the fields, for config.json."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TalebiConfig:
        """Build from a dict, refusing unknown keys (a typo must not pass silently)."""
        return config_from_dict(cls, data, "Talebi config")


@dataclass(frozen=True)
class StridedConfig:
    """Architecture of a :class:`~.strided.StridedResizer`; JSON via :meth:`to_dict`."""

    # Image channels in and out.
    channels: int = 3
    # Kernel size and stride: the resizer downsizes by exactly 1/k (2: the study's x0.5).
    k: int = 2
    # "area": start as k x k averaging per channel; "random": PyTorch's default initialisation.
    init: StridedInit = "area"

    def __post_init__(self) -> None:
        _check_int("channels", self.channels, 1, 1024)
        _check_int("k", self.k, 1, 64)
        _check_choice("init", self.init, _STRIDED_INITS)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the fields, for config.json."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StridedConfig:
        """Build from a dict, refusing unknown keys (a typo must not pass silently)."""
        return config_from_dict(cls, data, "strided config")
