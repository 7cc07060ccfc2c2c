"""Fashion-MNIST from local idx files (Debian's ``dataset-fashion-mnist`` or torchvision's layout).

Never downloads. Search order: ``$DOWNSIZENET_FASHION_MNIST``, Debian's
``/usr/share/datasets/fashion-mnist``, then ``<root>/FashionMNIST/raw`` for torchvision users.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch

ENV = "DOWNSIZENET_FASHION_MNIST"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def candidate_dirs(root: str | Path | None = None) -> list[Path]:
    """Folders searched for the idx files, in order."""
    dirs = []
    if os.environ.get(ENV):
        dirs.append(Path(os.environ[ENV]).expanduser())
    if root is not None:
        dirs += [Path(root), Path(root) / "FashionMNIST" / "raw"]
    dirs.append(DEBIAN_DIR)
    return dirs


def _find(name: str, dirs: list[Path]) -> Path:
    for folder in dirs:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    tried = ", ".join(str(d) for d in dirs)
    raise FileNotFoundError(
        f"Fashion-MNIST file {name}(.gz) not found in {tried}; install Debian's "
        f"dataset-fashion-mnist or set {ENV} to a folder holding the idx files."
    )


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ValueError(f"{path} is not a readable idx file: {error}") from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte idx file (bad magic number).")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise ValueError(f"{path} is truncated: expected {expected} bytes of data for {shape}.")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(
    split: Literal["train", "test"] = "train", root: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64 (0-9, see :data:`CLASSES`)."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    dirs = candidate_dirs(root)
    images_name, labels_name = _FILES[split]
    images = _read_idx(_find(images_name, dirs))
    labels = _read_idx(_find(labels_name, dirs))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"Fashion-MNIST {split} images and labels do not match in shape.")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))
