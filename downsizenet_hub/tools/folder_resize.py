"""Resize a folder (or glob) of image files with one resizer, safely and in batches.

Two steps, so that every check happens before the first file is written:

1. :func:`plan_resize` lists the inputs and their output paths and refuses plans that could lose
   data or cannot be written: an output folder equal to or inside the input folder, an output
   path that is an input, (without ``overwrite``) an output file that already exists, or an
   output folder that cannot be written (no permission, a read-only file system).
2. :func:`resize_files` reads each file's header, groups same-sized images into batches, resizes
   them with :func:`~downsizenet_hub.tools.channels.resize_any_channels` (grayscale and alpha
   handled as documented there), and writes each result atomically in the input's mode and format
   (:mod:`downsizenet_hub.imageio`). A file that cannot be read or written is reported and
   skipped; the others go on.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from downsizenet_hub.atomic import WriteError
from downsizenet_hub.imageio import (
    IMAGE_SUFFIXES,
    ImageFileError,
    ImageHeader,
    read_header,
    read_image,
    write_image,
)
from downsizenet_hub.resizing.target import ScaleArg, SizeArg
from downsizenet_hub.tools.channels import resize_any_channels

_GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class ResizeTask:
    """One file to resize: where it comes from and where its resized copy goes."""

    source: Path
    target: Path


@dataclass
class ResizeReport:
    """What :func:`resize_files` did: files written, and files skipped with the reason."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def find_inputs(inputs: str | os.PathLike[str]) -> tuple[list[Path], Path]:
    """The files named by ``inputs`` and the folder their output names are relative to.

    ``inputs`` is a folder (searched recursively for :data:`IMAGE_SUFFIXES`), one file, or a glob
    pattern (``**`` recurses; every matching file is taken, whatever its suffix).

    Raises:
        FileNotFoundError: the folder or file does not exist, or the glob matches no file.
        ValueError: the folder holds no image files, or ``inputs`` is empty.
    """
    text = os.fspath(inputs)
    if not text.strip():  # Path("") is the current folder: never resize it by accident
        raise ValueError("the input is empty; give a folder, an image file or a glob.")
    path = Path(text).expanduser()
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in folder {text!r}.")
        return files, path
    if path.is_file():
        return [path], path.parent
    if not _GLOB_CHARACTERS & set(text):
        raise FileNotFoundError(f"input {text!r} does not exist (expected a folder, file or glob).")
    files = sorted(Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True))
    files = [p for p in files if p.is_file()]
    if not files:
        raise FileNotFoundError(f"the glob {text!r} matches no files.")
    return files, _glob_base(text)


def plan_resize(
    inputs: str | os.PathLike[str], output_dir: str | os.PathLike[str], *, overwrite: bool = False
) -> list[ResizeTask]:
    """Pair every input file with its output path under ``output_dir`` (same relative name).

    Raises:
        FileNotFoundError, ValueError: see :func:`find_inputs`; or the output folder is a file, is
            the input folder or lies inside it, or an output path is one of the inputs.
        FileExistsError: an output file exists and ``overwrite`` is False.
    """
    files, base = find_inputs(inputs)
    out = Path(output_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"the output {str(out)!r} exists and is not a folder.")
    out_resolved, base_resolved = out.resolve(), base.resolve()
    if Path(inputs).expanduser().is_dir() and (
        out_resolved == base_resolved or base_resolved in out_resolved.parents
    ):
        raise ValueError(
            f"the output folder {str(out)!r} is the input folder {os.fspath(inputs)!r} or inside "
            "it; choose a folder outside the inputs."
        )
    sources = {f.resolve() for f in files}
    tasks = [ResizeTask(f, out / f.relative_to(base)) for f in files]
    for task in tasks:
        if task.target.resolve() in sources:
            raise ValueError(
                f"writing {str(task.target)!r} would overwrite the input {str(task.target)!r}; "
                "choose another output folder."
            )
    check_writable(out)
    existing = [task.target for task in tasks if task.target.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{len(existing)} output file(s) already exist, e.g. {str(existing[0])!r}; "
            "pass overwrite=True (--overwrite) to replace them."
        )
    return tasks


def check_writable(folder: Path) -> None:
    """Raise PermissionError (one line naming the folder and the cause) unless files can be made
    in ``folder``, or in its nearest existing parent where it does not exist yet."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(
            f"cannot write to the output folder {folder}: {existing} is a file."
        )
    if os.access(existing, os.W_OK | os.X_OK):
        return
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    cause = "read-only file system" if read_only else "permission denied"
    where = "" if existing == folder else f" ({existing} cannot be written)"
    raise PermissionError(f"cannot write to the output folder {folder}{where}: {cause}.")


def resize_files(
    tasks: Sequence[ResizeTask],
    resizer: nn.Module,
    *,
    size: SizeArg | None = None,
    scale_factor: ScaleArg | None = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    on_done: Callable[[ResizeTask, str | None], None] | None = None,
) -> ResizeReport:
    """Resize and write every task's file; ``on_done(task, error)`` is called once per file.

    The resizer runs frozen (eval mode, no autograd) on ``device``; images of the same size and
    channel layout share a batch of up to ``batch_size``.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    report = ResizeReport()

    def done(task: ResizeTask, error: str | None) -> None:
        if error is None:
            report.written.append(task.target)
        else:
            report.failed.append((task.source, error))
        if on_done is not None:
            on_done(task, error)

    groups: dict[tuple[int, int, int, bool], list[ResizeTask]] = {}
    for task in tasks:
        try:
            header = read_header(task.source)
        except ImageFileError as error:
            done(task, str(error))
            continue
        groups.setdefault(_layout(header), []).append(task)
    resizer = resizer.to(device).eval()
    for (_, _, _, alpha), group in groups.items():
        for chunk in _chunks(group, batch_size):
            _resize_chunk(chunk, resizer, size, scale_factor, alpha, device, done)
    return report


def _resize_chunk(
    chunk: list[ResizeTask],
    resizer: nn.Module,
    size: SizeArg | None,
    scale_factor: ScaleArg | None,
    alpha: bool,
    device: str | torch.device,
    done: Callable[[ResizeTask, str | None], None],
) -> None:
    loaded = []
    for task in chunk:
        try:
            loaded.append((task, read_image(task.source)))
        except ImageFileError as error:
            done(task, str(error))
    if not loaded:
        return
    batch = torch.stack([image.pixels for _, image in loaded]).to(device)
    try:
        with torch.no_grad():  # not inference_mode: DownsizeNet caches geometry tensors
            resized = resize_any_channels(
                resizer, batch, size=size, scale_factor=scale_factor, alpha=alpha
            )
    except ValueError as error:  # e.g. a scale factor that leaves no pixel
        for task, _ in loaded:
            done(task, f"{task.source}: {error}")
        return
    for (task, image), pixels in zip(loaded, resized, strict=True):
        try:
            write_image(task.target, pixels, image)
        except ImageFileError as error:
            done(task, str(error))
        except OSError as error:  # its folder cannot be made (full disk, no permission)
            done(task, str(WriteError.from_error(task.target, error)))
        else:
            done(task, None)


def _layout(header: ImageHeader) -> tuple[int, int, int, bool]:
    return header.height, header.width, header.channels, header.alpha


def _chunks(items: list[ResizeTask], size: int) -> Iterator[list[ResizeTask]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _glob_base(pattern: str) -> Path:
    """The leading folders of ``pattern`` that hold no glob characters."""
    parts = Path(os.path.expanduser(pattern)).parts
    plain = []
    for part in parts[:-1]:
        if _GLOB_CHARACTERS & set(part):
            break
        plain.append(part)
    return Path(*plain) if plain else Path(".")
