"""VGG16's conv trunk: its layout, state-dict checks, and the frozen module that runs it.

The trunk is torchvision's ``vgg16().features`` (same keys, same layers); :class:`FrozenVGG16`
holds it with every parameter frozen, stays in eval mode, and applies its weights' input
normalisation inside ``forward`` so callers always pass ``[0, 1]`` RGB.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn
from torchvision.models import VGG16_Weights

# torchvision's "D" configuration: conv widths, "M" for a 2x2 max-pool. Building from it (instead
# of calling vgg16()) skips the 120M-parameter classifier; the tests check the keys match.
VGG16_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``(rgb - mean) / std`` applied to ``[0, 1]`` RGB images before the trunk."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def _normalization_of(transforms: nn.Module) -> Normalization:
    """The mean/std that a torchvision weights' ``transforms()`` declares."""
    mean, std = (list(map(float, getattr(transforms, key))) for key in ("mean", "std"))
    return Normalization(mean=(mean[0], mean[1], mean[2]), std=(std[0], std[1], std[2]))


IMAGENET_NORMALIZATION = _normalization_of(VGG16_Weights.IMAGENET1K_V1.transforms())


def vgg16_features_layers(layout: tuple[int | str, ...] = VGG16_LAYOUT) -> nn.Sequential:
    """``vgg16().features`` on the meta device (no memory, no init): load with ``assign=True``."""
    layers: list[nn.Module] = []
    in_channels = 3
    with torch.device("meta"):
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
                in_channels = int(item)
    return nn.Sequential(*layers)


def vgg16_features_shapes() -> dict[str, tuple[int, ...]]:
    """The keys and shapes of a torchvision ``vgg16().features`` state dict, in order."""
    return {key: tuple(value.shape) for key, value in vgg16_features_layers().state_dict().items()}


def check_features_state_dict(state: Mapping[str, Tensor], origin: str | Path) -> dict[str, Tensor]:
    """Validate a ``vgg16().features`` state dict or a full VGG16 one (``features.*`` is taken).

    Returns float32 CPU tensors in the canonical key order. Raises ValueError naming ``origin``.
    """
    if any(key.startswith("features.") for key in state):
        state = {
            k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")
        }
    expected = vgg16_features_shapes()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        raise ValueError(
            f"{origin} is not a VGG16 state dict: missing keys {missing[:4]}, unexpected keys "
            f"{unexpected[:4]} (expected torchvision vgg16().features or full vgg16() keys)."
        )
    checked = {}
    for key, shape in expected.items():
        value = state[key]
        if not isinstance(value, Tensor) or tuple(value.shape) != shape:
            found = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{origin}: {key} has shape {found}, VGG16 expects {shape}.")
        if not value.is_floating_point() or not bool(torch.isfinite(value).all()):
            raise ValueError(f"{origin}: {key} is not a finite floating-point tensor.")
        checked[key] = value.detach().to(dtype=torch.float32, device="cpu").contiguous()
    return checked


def features_sha256(state: Mapping[str, Tensor]) -> str:
    """sha256 of names, shapes and float32 bytes: the same trunk hashes the same from any file."""
    digest = hashlib.sha256()
    for key, value in state.items():
        digest.update(f"{key}:{tuple(value.shape)};".encode())
        digest.update(value.detach().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def read_state_dict_file(path: Path) -> dict[str, Tensor]:
    """A torchvision-format VGG16 state dict from ``.safetensors`` or ``.pth``/``.pt`` (weights-only
    unpickling); a full ``vgg16()`` state dict is accepted and its classifier ignored."""
    if not path.is_file():
        raise FileNotFoundError(f"VGG16 weights file {path} does not exist.")
    try:
        if path.suffix == ".safetensors":
            state: object = load_file(path)
        elif path.suffix in (".pth", ".pt"):
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise ValueError(
                f"{path} has suffix {path.suffix!r}; expected .safetensors, .pth or .pt."
            )
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} is not a state dict that weights-only loading accepts (a corrupt file, or "
            "one holding objects other than tensors: save a plain state dict or safetensors)."
        ) from error
    except (SafetensorError, RuntimeError, EOFError, OSError) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0][:200]
        raise ValueError(f"{path} is not a readable state dict file ({reason}).") from error
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds a {type(state).__name__}, expected a state dict.")
    return check_features_state_dict(state, path)


class FrozenVGG16(nn.Module):
    """VGG16's conv trunk, frozen: parameters never require grad and the module stays in eval mode.

    Input ``(B, 3, H, W)`` float RGB in ``[0, 1]``; the weights' normalisation is applied inside.
    Output ``(B, 512, H // stride, W // stride)`` after the last ReLU: ``stride`` 16 without the
    last max-pool (as torchvision's Faster R-CNN-on-VGG examples use), else 32. Gradients still
    flow to the input, so a resizer in front of it trains through it.

    ``source`` names the weights (``imagenet``, ``hed`` or a file path), ``provenance`` is the line
    for outputs and model cards, ``weights_sha256`` hashes the trunk's tensors (see
    :func:`features_sha256`).
    """

    out_channels: int = 512
    mean: Tensor
    std: Tensor

    def __init__(
        self,
        features_state: Mapping[str, Tensor],
        *,
        normalization: Normalization = IMAGENET_NORMALIZATION,
        source: str = "custom",
        provenance: str = "custom VGG16 state dict",
        drop_last_pool: bool = True,
    ) -> None:
        super().__init__()
        state = check_features_state_dict(features_state, source)
        features = vgg16_features_layers()
        features.load_state_dict(state, strict=True, assign=True)
        self.features = features[:-1] if drop_last_pool else features
        self.features.requires_grad_(False)
        mean, std = (
            torch.tensor(v).view(1, 3, 1, 1) for v in (normalization.mean, normalization.std)
        )
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.stride = 16 if drop_last_pool else 32
        self.source = source
        self.provenance = provenance
        self.weights_sha256 = features_sha256(state)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenVGG16:
        """Ignore ``mode``: a frozen trunk stays in eval mode when its parent trains."""
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(
                f"FrozenVGG16 expects float RGB images (B, 3, H, W) in [0, 1], got "
                f"{images.dtype} {tuple(images.shape)}."
            )
        return self.features((images - self.mean) / self.std)

    def extra_repr(self) -> str:
        return f"source={self.source!r}, stride={self.stride}, sha256={self.weights_sha256[:12]}"
