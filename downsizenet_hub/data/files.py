"""Reading one image or one label map from disk, with errors that name the file.

Every loader reads through these helpers, so a corrupt, truncated or mislabelled file stops the
run with one sentence naming it (never a bare PIL traceback). Images come back as
``tv_tensors.Image`` ``(3, H, W)`` uint8 RGB; label maps as ``(H, W)`` uint8 numpy arrays.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision import tv_tensors


class CorruptFileError(ValueError):
    """A dataset file exists but cannot be decoded, or holds values outside its format."""


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a FileNotFoundError naming it and what it should hold."""
    if not path.is_dir():
        raise FileNotFoundError(f"Expected {what} at {path}, but there is no such folder.")
    return path


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a FileNotFoundError naming it and what it should be."""
    if not path.is_file():
        raise FileNotFoundError(f"Expected {what} at {path}, but there is no such file.")
    return path


def require_files(paths: Iterable[Path], what: str) -> None:
    """Raise FileNotFoundError naming the first missing file (and how many are missing)."""
    missing = [path for path in paths if not path.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FileNotFoundError(f"Expected {what} at {missing[0]}{more}, but it does not exist.")


def _open_decoded(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()  # decode now: truncated files only fail here
    except FileNotFoundError:
        raise FileNotFoundError(f"Image file {path} does not exist.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise CorruptFileError(f"Cannot decode image file {path}: {error}") from error
    return image


def read_rgb(path: str | Path) -> tv_tensors.Image:
    """An image file as ``tv_tensors.Image`` ``(3, H, W)`` uint8 RGB (grey, palette expanded)."""
    image = _open_decoded(Path(path)).convert("RGB")
    array = np.asarray(image, dtype=np.uint8)
    return tv_tensors.Image(torch.from_numpy(array.copy()).permute(2, 0, 1))


def read_label_map(path: str | Path) -> np.ndarray:
    """A single-channel label PNG (palette ``P`` or grey ``L``) as its raw ``(H, W)`` uint8 indices.

    Palette images are read as indices, not colours, which is how VOC and Cityscapes store classes.
    An RGB label map (a colour rendering, a common mistake) is rejected rather than guessed.
    """
    path = Path(path)
    image = _open_decoded(path)
    if image.mode not in ("P", "L"):
        raise CorruptFileError(
            f"Label map {path} has mode {image.mode}; expected a single-channel palette (P) or "
            "grey (L) PNG holding class indices."
        )
    return np.asarray(image, dtype=np.uint8).copy()


def check_same_size(
    image: torch.Tensor, label_map: np.ndarray, image_path: Path, label_path: Path
) -> None:
    """Raise CorruptFileError when a label map does not cover its image pixel for pixel."""
    if tuple(image.shape[-2:]) != label_map.shape:
        raise CorruptFileError(
            f"Label map {label_path} is {label_map.shape[1]}x{label_map.shape[0]} but its image "
            f"{image_path} is {image.shape[-1]}x{image.shape[-2]} (W x H); they must match."
        )
