"""A content-addressed cache for a frozen front end (resizer + frozen backbone).

When every module in front of the trainable heads is frozen, its output is a pure function of the
input image. :class:`CachedFrozenFront` keys each image by a hash of its bytes, salted with the
hashes of the frozen modules' tensors, their classes and configurations (the module tree's
``repr``) and the resize arguments, and computes features only for
images it has not seen. Changing any frozen weight changes the salt, so stale features are never
reused. The cache lives in memory and, optionally, in a folder of safetensors files.

Not the package's folder-cache scheme (a folder keyed by its inputs, built aside and published
whole, as the scenes builds are): it memoises a batched function image by image, memory first,
so each entry is one file written by the one atomic write (``atomic.write_atomic_path``), and a
file that exists is a complete entry.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from downsizenet_hub.atomic import write_atomic_path
from downsizenet_hub.tensor_hash import module_sha256


class CachedFrozenFront(nn.Module):
    """Wraps a frozen ``front(images) -> features`` and memoises it per image.

    Args:
        front: a module whose parameters are all frozen (checked).
        salt: extra text that must change whenever the front's output could (e.g. resize size).
        directory: optional folder for an on-disk cache shared across runs.
    """

    def __init__(self, front: nn.Module, salt: str = "", directory: Path | None = None) -> None:
        super().__init__()
        if any(p.requires_grad for p in front.parameters()):
            raise ValueError("CachedFrozenFront needs a frozen front: a parameter requires grad.")
        self.front = front
        # The tensors alone do not say what the front computes: fixed resizers have none (bilinear
        # and area would share features), and a DownsizeNet's neighbourhood is no tensor. The
        # module tree's repr names every class with its configuration.
        identity = f"{module_sha256(front)}|{front!r}|{salt}"
        self.key_salt = hashlib.sha256(identity.encode()).hexdigest()
        self.directory = Path(directory) / self.key_salt[:16] if directory is not None else None
        self._memory: dict[str, torch.Tensor] = {}
        self.hits = 0
        self.misses = 0

    def train(self, mode: bool = True) -> CachedFrozenFront:
        """The front stays in eval mode whatever the parent does."""
        super().train(mode)
        self.front.eval()
        return self

    def _key(self, image: torch.Tensor) -> str:
        data = image.detach().cpu().contiguous()
        digest = hashlib.sha256(self.key_salt.encode())
        digest.update(f"{data.dtype}:{tuple(data.shape)}".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def _load(self, key: str) -> torch.Tensor | None:
        if key in self._memory:
            return self._memory[key]
        if self.directory is not None:
            path = self.directory / f"{key}.safetensors"
            if path.is_file():
                features = load_file(str(path))["features"]
                self._memory[key] = features
                return features
        return None

    def _store(self, key: str, features: torch.Tensor) -> None:
        self._memory[key] = features
        if self.directory is not None:
            # Several processes (DDP ranks) may store the same key at once: each writes its own
            # uniquely named temporary, and the last rename wins with identical content.
            tensors = {"features": features.contiguous()}
            write_atomic_path(
                self.directory / f"{key}.safetensors", lambda tmp: save_file(tensors, str(tmp))
            )

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        keys = [self._key(image) for image in images]
        found = [self._load(k) for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            computed = self.front(images[missing]).cpu()
            for i, features in zip(missing, computed, strict=True):
                found[i] = features.clone()
                self._store(keys[i], found[i])  # type: ignore[arg-type]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        return torch.stack(found).to(images.device)  # type: ignore[arg-type]

    def clear_memory(self) -> None:
        self._memory.clear()
