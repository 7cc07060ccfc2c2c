"""Image files to float tensors and back, keeping each file's mode and format.

Pixels travel as ``(C, H, W)`` float32 in [0, 1]: colour channels first, then alpha. How each PIL
mode maps there and back:

=========  ===================================  ==============================================
mode       tensor                               written back as
=========  ===================================  ==============================================
``RGB``    3 channels                           ``RGB``
``L``      1 channel                            ``L``
``RGBA``   3 colour + alpha                     ``RGBA``
``LA``     1 colour + alpha                     ``LA``
``1``      1 channel (0 or 1)                   ``1``, thresholded at 0.5
``I;16``   1 channel, value / 65535             ``I;16``
``CMYK``   converted to RGB                     ``CMYK`` (converted back by PIL)
``P``      RGB (RGBA if it has transparency)    ``P`` with an adaptive 256-colour palette;
                                                with transparency ``RGBA`` (PNG, WebP, TIFF)
=========  ===================================  ==============================================

Other modes (``I``, ``F``, ``YCbCr``, ...) and multi-frame files (animated GIF, multi-page TIFF)
are refused with :class:`ImageFileError`. Files are written atomically (a temporary file in the
same folder, then ``os.replace``), keeping the ICC profile and EXIF block; JPEG and WebP are saved
at quality 95.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from downsizenet_hub.atomic import WriteError, describe, refuse_non_regular, write_atomic_path

#: File suffixes the ``resize`` command picks up in a folder (case-insensitive).
IMAGE_SUFFIXES: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
)
#: PIL mode -> (mode decoded to, whether the last channel is alpha).
_DECODE: dict[str, tuple[str, bool]] = {
    "RGB": ("RGB", False),
    "L": ("L", False),
    "RGBA": ("RGBA", True),
    "LA": ("LA", True),
    "1": ("L", False),
    "I;16": ("I;16", False),
    "CMYK": ("RGB", False),
}
_ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")
_QUALITY_FORMATS = ("JPEG", "WEBP")


class ImageFileError(ValueError):
    """A file that cannot be read or written as an image; the message names the file."""


@dataclass(frozen=True)
class ImageHeader:
    """What a file holds, read without decoding its pixels."""

    path: Path
    height: int
    width: int
    mode: str  # the file's PIL mode
    format: str  # PIL format name, e.g. "PNG", "JPEG"
    channels: int  # channels of the decoded tensor, alpha included
    alpha: bool  # whether the last channel is alpha


@dataclass
class LoadedImage:
    """Decoded pixels plus what is needed to write a resized copy in the same mode and format."""

    pixels: torch.Tensor  # (C, H, W) float32 in [0, 1]
    header: ImageHeader
    save_options: dict[str, Any] = field(default_factory=dict)


def read_header(path: str | os.PathLike[str]) -> ImageHeader:
    """Size, mode and format of an image file, without decoding it.

    Raises:
        ImageFileError: the file is not an image PIL can read, is multi-frame, or has a mode
            this module does not handle.
    """
    path = _existing(path)
    try:
        with Image.open(path) as image:
            return _header(path, image)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageFileError(f"{path}: cannot read as an image ({_one_line(error)}).") from error


def read_image(path: str | os.PathLike[str]) -> LoadedImage:
    """Decode an image file to ``(C, H, W)`` float32 in [0, 1] (see the module table).

    Example:
        >>> import tempfile, numpy as np
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> Image.fromarray(np.full((4, 6), 255, np.uint8)).save(folder / "white.png")
        >>> loaded = read_image(folder / "white.png")
        >>> loaded.pixels.shape, loaded.pixels.max().item(), loaded.header.mode
        (torch.Size([1, 4, 6]), 1.0, 'L')
    """
    path = _existing(path)
    try:
        with Image.open(path) as image:
            header = _header(path, image)
            options = _save_options(image)
            decoded = image.convert(_decoded_mode(image)) if image.mode != "I;16" else image
            decoded.load()
            array = np.asarray(decoded)
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,  # Pillow's guard: more pixels than it will decode
    ) as error:
        if isinstance(error, ImageFileError):
            raise
        raise ImageFileError(f"{path}: cannot read as an image ({_one_line(error)}).") from error
    pixels = _to_tensor(array, header.mode)
    return LoadedImage(pixels=pixels, header=header, save_options=options)


def write_image(path: str | os.PathLike[str], pixels: torch.Tensor, like: LoadedImage) -> None:
    """Write ``pixels`` ``(C, h, w)`` in [0, 1] to ``path`` in ``like``'s mode and format.

    Values are clamped to [0, 1] and rounded. The file appears complete or not at all.
    """
    path = Path(path)
    header = like.header
    if pixels.dim() != 3 or pixels.shape[0] != header.channels:
        raise ValueError(
            f"pixels for {path.name} must have shape ({header.channels}, h, w), "
            f"got {tuple(pixels.shape)}."
        )
    image = _to_pil(pixels, header)
    options = dict(like.save_options)
    if header.format in _QUALITY_FORMATS:
        options.setdefault("quality", 95)
    saving = False  # set once the temporary exists: failures before that are not this image's

    def save(temporary: Path) -> None:
        nonlocal saving
        saving = True
        image.save(temporary, format=header.format, **options)

    try:
        refuse_non_regular(path)  # a folder, device or FIFO there is this image's problem
    except WriteError as error:
        raise ImageFileError(f"{path}: cannot write the image ({error.cause}).") from error
    try:
        write_atomic_path(path, save)
    except (OSError, ValueError, KeyError, TypeError) as error:
        if not saving:  # the folder cannot be created or written to: raised as it is
            raise
        raise ImageFileError(f"{path}: cannot write the image ({describe(error)[1]}).") from error


def _existing(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        raise ImageFileError(f"{path}: is a folder, not an image file.")
    if path.exists():  # a FIFO (opening it would wait for a writer), a device, a socket
        raise ImageFileError(f"{path}: not a regular file.")
    raise ImageFileError(f"{path}: no such file.")


def _header(path: Path, image: Image.Image) -> ImageHeader:
    frames = int(getattr(image, "n_frames", 1))
    if frames > 1:
        raise ImageFileError(
            f"{path}: has {frames} frames; only single-frame images can be resized."
        )
    mode = image.mode
    if mode == "P":
        alpha = _palette_has_alpha(image)
        if alpha and image.format not in _ALPHA_FORMATS:
            raise ImageFileError(
                f"{path}: a {image.format} palette image with transparency cannot be written "
                "back after resizing (partial transparency does not fit a palette)."
            )
        channels = 4 if alpha else 3
    elif mode in _DECODE:
        decoded, alpha = _DECODE[mode]
        channels = len(decoded) if decoded != "I;16" else 1
    else:
        raise ImageFileError(
            f"{path}: PIL mode {mode!r} is not supported; expected one of {[*_DECODE, 'P']}."
        )
    width, height = image.size
    return ImageHeader(path, height, width, mode, image.format or "PNG", channels, alpha)


def _palette_has_alpha(image: Image.Image) -> bool:
    return "transparency" in image.info or (
        image.palette is not None and image.palette.mode == "RGBA"
    )


def _decoded_mode(image: Image.Image) -> str:
    if image.mode == "P":
        return "RGBA" if _palette_has_alpha(image) else "RGB"
    return _DECODE[image.mode][0]


def _save_options(image: Image.Image) -> dict[str, Any]:
    options: dict[str, Any] = {}
    icc = image.info.get("icc_profile")
    if icc:
        options["icc_profile"] = icc
    exif = image.getexif()
    if len(exif):
        options["exif"] = exif.tobytes()
    return options


def _to_tensor(array: np.ndarray, mode: str) -> torch.Tensor:
    if array.ndim == 2:
        array = array[:, :, None]
    if mode == "I;16":
        scale = 65535.0
    elif array.dtype == np.bool_:
        scale = 1.0
    else:
        scale = 255.0
    pixels = torch.from_numpy(np.ascontiguousarray(array).astype(np.float32)) / scale
    return pixels.permute(2, 0, 1).contiguous()


def _to_pil(pixels: torch.Tensor, header: ImageHeader) -> Image.Image:
    values = pixels.detach().float().clamp(0.0, 1.0).cpu().permute(1, 2, 0).numpy()
    mode = header.mode
    if mode == "I;16":
        return Image.fromarray(np.rint(values[:, :, 0] * 65535.0).astype(np.uint16))
    if mode == "1":
        return Image.fromarray(values[:, :, 0] >= 0.5).convert("1")
    array = np.rint(values * 255.0).astype(np.uint8)
    # PIL infers L, LA, RGB or RGBA from the channel count of a uint8 array.
    image = Image.fromarray(array[:, :, 0] if header.channels == 1 else array)
    if mode == "CMYK":
        return image.convert("CMYK")
    if mode == "P" and not header.alpha:
        return image.quantize(256)
    return image


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
