"""A tiny learned resizer: bilinear, plus a learned residual that starts at zero."""

from dataclasses import asdict, dataclass

import torch
from torch import nn

from downsizenet_hub.plugins import ResizerPlugin
from downsizenet_hub.resizing.functional import interpolate


@dataclass(frozen=True)
class TinyConfig:
    channels: int = 3  # image channels, in and out
    hidden: int = 8  # width of the residual branch

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TinyConfig":
        return cls(**data)  # an unknown key is a TypeError: refused, never ignored


class TinyResizer(nn.Module):
    def __init__(self, channels: int = 3, hidden: int = 8) -> None:
        super().__init__()
        self.config = TinyConfig(channels, hidden)  # what the hub stores in config.json
        self.residual = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, channels, 1)
        )
        nn.init.zeros_(self.residual[-1].weight)  # starts as plain bilinear
        nn.init.zeros_(self.residual[-1].bias)

    def forward(self, images: torch.Tensor, size=None, scale_factor=None) -> torch.Tensor:
        small = interpolate(images, "bilinear", size, scale_factor)
        return small + self.residual(small)


plugin = ResizerPlugin(
    "tiny_learned", TinyResizer, config_class=TinyConfig, title="tiny residual resizer"
)
