"""The local hub: published resizers as ``<hub_dir>/namespace/name`` folders (HF repo layout).

Every change is atomic. ``publish`` writes into a hidden temporary folder beside the target and
renames it into place (with ``force``, the old folder is renamed aside first and put back if the
second rename fails); ``remove`` renames the folder aside before deleting it. A failure at any
point leaves the visible hub as it was; a process killed outright (SIGKILL, power loss) can leave
hidden folders behind, which the next publish, remove or listing in that namespace finishes (see
:func:`_recover`). Resizers shipped inside the package
(``downsizenet_hub/pretrained/namespace/name``) are listed beside the local ones but are read-only.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from downsizenet_hub import paths
from downsizenet_hub.hub import files
from downsizenet_hub.hub.names import name_problem, validate_name
from downsizenet_hub.hub.record import TrainingRecord
from downsizenet_hub.resizer import DownsizeNet, DownsizeNetConfig

#: Resizers shipped with the package (made by this project's ``pretrain`` command).
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "pretrained"

Source = Literal["local", "shipped"]

#: Hidden folders this module makes beside ``name`` while changing it.
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>publishing|replaced|removing)-[A-Za-z0-9_]+$")
#: Such a folder untouched for this long belongs to a process that died mid-change (a publish or
#: removal in progress takes seconds), so it is safe to finish its work.
STALE_AFTER_S = 600.0


@dataclass(frozen=True)
class PublishedResizer:
    """One entry of ``downsizenet hub list``. ``problem`` says why an entry cannot be read (its
    config and record are then None)."""

    name: str
    source: Source
    path: Path
    config: DownsizeNetConfig | None
    record: TrainingRecord | None
    size_bytes: int
    # The record's date, else the day the weights file was written.
    date: str
    problem: str | None = None


def local_path(name: str) -> Path:
    """Where ``namespace/name`` lives in the local hub (the name is validated first)."""
    return _inside(paths.hub_dir(), validate_name(name))


def shipped_path(name: str) -> Path:
    """Where ``namespace/name`` would be among the resizers shipped with the package."""
    return _inside(SHIPPED_DIR, validate_name(name))


def publish(
    model: DownsizeNet,
    name: str,
    *,
    record: TrainingRecord | None = None,
    force: bool = False,
) -> Path:
    """Publish ``model`` to the local hub as ``name`` (``namespace/name``); return its folder.

    Writes config.json, model.safetensors and the model card into a temporary folder, checks
    that it loads back, then renames it into place. An existing name is refused unless ``force``.
    """
    if not isinstance(model, DownsizeNet):
        raise TypeError(f"publish expects a DownsizeNet, got {type(model).__name__}.")
    if record is not None and not isinstance(record, TrainingRecord):
        raise TypeError(f"record must be a TrainingRecord or None, got {type(record).__name__}.")
    target = local_path(name)
    _recover(target.parent)
    if _occupied(target) and not force:
        raise FileExistsError(
            f"{name} is already in the local hub ({target}); use force=True (--force) to "
            "replace it."
        )
    created = _make_parents(target.parent)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.publishing-", dir=target.parent))
        try:
            files.write_folder(staging, model, record, name)
            files.load_folder(staging)  # what was written must read back, before it is visible
            _move_into_place(staging, target, force=force)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except BaseException:
        for folder in reversed(created):
            _rmdir_if_empty(folder)
        raise
    return target


def list_published() -> list[PublishedResizer]:
    """The local hub's resizers, then the shipped ones, each sorted by name."""
    entries: list[PublishedResizer] = []
    roots: tuple[tuple[Source, Path], ...] = (("local", paths.hub_dir()), ("shipped", SHIPPED_DIR))
    for source, root in roots:
        if source == "local" and root.is_dir():
            for namespace in root.iterdir():
                if namespace.is_dir():
                    _recover(namespace)
        for name, folder in _folders(root):
            entries.append(_describe(name, source, folder))
    return entries


def remove(name: str) -> Path:
    """Delete ``name`` from the local hub; return the folder it occupied."""
    target = local_path(name)
    _recover(target.parent)
    if not target.is_dir():
        if shipped_path(name).is_dir():
            raise ValueError(
                f"{name} is shipped with downsizenet-hub, not in the local hub; it cannot be "
                "removed."
            )
        raise FileNotFoundError(f"no resizer named {name} in the local hub ({paths.hub_dir()}).")
    trash = target.parent / f".{target.name}.removing-{uuid.uuid4().hex[:8]}"
    os.rename(target, trash)  # from here on the name is gone, whatever happens to the deletion
    shutil.rmtree(trash)
    _rmdir_if_empty(target.parent)
    return target


def _inside(root: Path, name: str) -> Path:
    path = root / name
    # A second line of defence behind validate_name: the joined path must stay under root.
    if os.path.commonpath([os.path.abspath(root), os.path.abspath(path)]) != os.path.abspath(root):
        raise ValueError(f"resizer name {name!r} escapes {root}.")
    return path


def _occupied(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p ``folder``; return the folders that this call created, outermost first."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    created: list[Path] = []
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            continue  # made concurrently by someone else: not ours to remove
        created.append(path)
    return created


def _rmdir_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (or already gone): leave it
        folder.rmdir()


def _move_into_place(staging: Path, target: Path, *, force: bool) -> None:
    if not _occupied(target):
        # rename() refuses a non-empty target, so a concurrent publish of the same name fails
        # here instead of being overwritten.
        os.rename(staging, target)
        return
    if not force:
        raise FileExistsError(f"{target} appeared while publishing; nothing was replaced.")
    aside = target.parent / f".{target.name}.replaced-{uuid.uuid4().hex[:8]}"
    os.rename(target, aside)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(aside, target)
        raise
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)


def _recover(namespace: Path) -> None:
    """Finish the changes that a killed process left half done in ``namespace``.

    A ``.name.replaced-*`` folder is an old version that a forced publish renamed aside: if
    ``name`` is missing, the process died between its two renames, so the old version goes back
    (the hub is as it was before that publish); otherwise it is deleted. ``.name.publishing-*``
    (unfinished staging) and ``.name.removing-*`` (a removal's trash) are deleted. Only folders
    older than :data:`STALE_AFTER_S` are touched: a younger one may be another process's work.
    """
    if not namespace.is_dir():
        return
    now = time.time()
    for leftover in sorted(namespace.iterdir()):
        match = _LEFTOVER.match(leftover.name)
        if match is None or not leftover.is_dir() or leftover.is_symlink():
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to change: leave it
            status = leftover.stat()
            if now - max(status.st_mtime, status.st_ctime) < STALE_AFTER_S:
                continue
            target = namespace / match["name"]
            if match["kind"] == "replaced" and not _occupied(target):
                os.rename(leftover, target)
            else:
                shutil.rmtree(leftover)


def _folders(root: Path) -> list[tuple[str, Path]]:
    """``(namespace/name, folder)`` for every valid name under ``root``; hidden temporaries and
    stray files are skipped."""
    if not root.is_dir():
        return []
    found = []
    for namespace in sorted(root.iterdir()):
        if not namespace.is_dir():
            continue
        for folder in sorted(namespace.iterdir()):
            name = f"{namespace.name}/{folder.name}"
            if folder.is_dir() and name_problem(name) is None:
                found.append((name, folder))
    return found


def _describe(name: str, source: Source, folder: Path) -> PublishedResizer:
    size = files.folder_size(folder)
    weights = folder / files.WEIGHTS_FILE
    written = date.fromtimestamp(weights.stat().st_mtime).isoformat() if weights.is_file() else ""
    try:
        config, record = files.read_config(folder / files.CONFIG_FILE)
    except (OSError, TypeError, ValueError) as error:
        return PublishedResizer(name, source, folder, None, None, size, written, problem=str(error))
    if not weights.is_file():
        problem = f"{weights} is missing"
        return PublishedResizer(
            name, source, folder, config, record, size, written, problem=problem
        )
    return PublishedResizer(
        name, source, folder, config, record, size, record.date if record else written
    )
