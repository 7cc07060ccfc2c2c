"""The local hub: published resizers under ``<hub_dir>/namespace/name`` (HF repo layout).

Each name is a link to an immutable version folder, and every change is committed by one atomic
rename or unlink of that link (see :mod:`.store`): after a failure, Ctrl-C or a kill at any point,
the next command sees the resizer as it was before the change or after it, whole, and a removed
name stays removed. What a killed process leaves behind is deleted by the next publish, removal or
listing in that namespace; nothing depends on the clock. Names that are plain folders (the original
layout) are read as they are. Nothing outside the hub is written or deleted: a namespace or name
that links outside it is refused, and removing a linked name removes the link only. Resizers
shipped inside the package (``downsizenet_hub/pretrained/namespace/name``) are listed beside the
local ones but are read-only.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from downsizenet_hub import paths
from downsizenet_hub.atomic import WriteError
from downsizenet_hub.hub import files, store
from downsizenet_hub.hub.architectures import ResizerConfig
from downsizenet_hub.hub.names import HubRef, hub_name, name_problem
from downsizenet_hub.hub.record import TrainingRecord

if TYPE_CHECKING:  # listing the hub reads config.json only: torch is imported to publish
    from torch import nn

#: Resizers shipped with the package (made by this project's ``pretrain`` command).
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "pretrained"

Source = Literal["local", "shipped"]


@dataclass(frozen=True)
class PublishedResizer:
    """One entry of ``downsizenet hub list``. ``problem`` says why an entry cannot be read (its
    config and record are then None)."""

    name: str
    source: Source
    path: Path
    # Its architecture's configuration (the type says which: see hub.architectures).
    config: ResizerConfig | None
    record: TrainingRecord | None
    size_bytes: int
    # The record's date, else the day the weights file was written.
    date: str
    problem: str | None = None


def local_path(name: str) -> Path:
    """Where ``namespace/name`` lives in the local hub (the name is validated first).

    Usually ``<hub_dir>/namespace/name``; after a forced publish over a plain folder was killed
    between its two renames, the pending link that decides the name (see :mod:`.store`).

    Raises:
        ValueError: the name is invalid, or its namespace or entry is a link leading outside the
            local hub.
    """
    return hub_entry(hub_name(name))


def hub_entry(name: HubRef) -> Path:
    """:func:`local_path` of a name already validated (parsed into a :class:`HubRef`)."""
    entry = _entry(name)
    found = store.pending_link(entry) or entry
    if store.occupied(found) and not store.inside(found, paths.hub_dir()):
        raise ValueError(_outside(found, name.repo_id))
    return found


def shipped_path(name: str) -> Path:
    """Where ``namespace/name`` would be among the resizers shipped with the package."""
    return shipped_entry(hub_name(name))


def shipped_entry(name: HubRef) -> Path:
    """:func:`shipped_path` of a name already validated."""
    return _inside(SHIPPED_DIR, name.repo_id)


def publish(
    model: nn.Module,
    name: str,
    *,
    record: TrainingRecord | None = None,
    force: bool = False,
) -> Path:
    """Publish ``model`` to the local hub as ``name`` (``namespace/name``); return its path.

    Writes config.json, model.safetensors and the model card into a new version folder, checks
    that it loads back, then points the name at it. An existing name is refused unless ``force``.
    ``model``: a resizer of a storable architecture (a DownsizeNet, TalebiResizer or
    StridedResizer; see :mod:`.architectures`).

    Raises:
        TypeError: ``model`` is not of a storable architecture.
        FileExistsError: ``name`` is taken and ``force`` is False.
        ValueError: the name is invalid or leads outside the hub through a link.
        OSError: the disk is full or not writable (one line naming the path and the cause); the
            hub is then as it was.
    """
    files.model_config(model)  # TypeError unless storable
    if record is not None and not isinstance(record, TrainingRecord):
        raise TypeError(f"record must be a TrainingRecord or None, got {type(record).__name__}.")
    target = _entry(hub_name(name))
    namespace = target.parent
    created: list[Path] = []
    while True:
        created += _make_parents(namespace)
        with store.locked(namespace) as held:
            if not held:
                if store.occupied(namespace) and not namespace.is_dir():
                    raise NotADirectoryError(
                        f"{namespace} is not a folder; the local hub needs it for {name}."
                    )
                continue  # removed by another process while we waited: make it again
            try:
                _publish_locked(model, name, target, record, force)
            except BaseException:
                for folder in reversed(created):
                    _rmdir_if_empty(folder)
                raise
            return target


def list_published() -> list[PublishedResizer]:
    """The local hub's resizers, then the shipped ones, each sorted by name.

    Each local namespace is first put right (see :func:`store.recover`) unless another process
    is changing it now.
    """
    entries: list[PublishedResizer] = []
    root = paths.hub_dir()
    if root.is_dir():
        for namespace in sorted(root.iterdir()):
            if namespace.is_dir() and store.inside(namespace, root):
                with store.locked(namespace, wait=False) as held:
                    if held:
                        with contextlib.suppress(OSError):  # a read-only hub: list it as it is
                            store.recover(namespace)
    for name, folder in _folders(root):
        entries.append(_describe(name, "local", folder))
    for name, folder in _folders(SHIPPED_DIR):
        entries.append(_describe(name, "shipped", folder))
    return entries


def remove(name: str) -> Path:
    """Delete ``name`` from the local hub; return the path it occupied.

    A name that is a link (to anywhere) loses the link only; nothing outside the hub is touched.
    """
    parsed = hub_name(name)
    target = _entry(parsed)
    namespace = target.parent
    with store.locked(namespace) as held:
        if held:
            store.recover(namespace)
            if target.is_symlink() or target.is_dir():
                store.uncommit(target)
                _rmdir_if_empty(namespace)
                return target
    if shipped_entry(parsed).is_dir():
        raise ValueError(
            f"{name} is shipped with downsizenet-hub, not in the local hub; it cannot be removed."
        )
    raise FileNotFoundError(f"no resizer named {name} in the local hub ({paths.hub_dir()}).")


def _publish_locked(
    model: nn.Module, name: str, target: Path, record: TrainingRecord | None, force: bool
) -> None:
    namespace = target.parent
    _check_namespace(namespace, name)  # again, now that it is locked
    store.recover(namespace)
    if store.occupied(target):
        if not force:
            raise FileExistsError(
                f"{name} is already in the local hub ({target}); use force=True (--force) to "
                "replace it."
            )
        if not store.inside(target, paths.hub_dir()):
            raise ValueError(_outside(target, name))
    version = store.new_version(namespace, target.name)
    try:
        store.make_version(version)
        files.write_model_files(version, model, record)
        store.step("wrote the weights")
        files.write_card(version, model, record, name)
        store.step("wrote the card")
        files.load_folder(version)  # what was written must read back, before it is visible
        store.commit(version, target)
    except BaseException as error:
        if store.occupied(version) and not _points_to(target, version):
            with contextlib.suppress(OSError):
                store.remove_tree(version)
                store.collect(namespace)
        if isinstance(error, WriteError) or (
            isinstance(error, OSError)
            and not isinstance(error, (FileExistsError, FileNotFoundError))
        ):  # a full disk, no permission: named by the resizer's path, not the hidden version's
            raise WriteError.from_error(target, error) from None
        raise
    with contextlib.suppress(OSError):  # committed: a failed cleanup is finished next time
        store.collect(namespace)


def _entry(name: HubRef) -> Path:
    """``<hub_dir>/namespace/name`` for a valid name whose namespace stays in the hub."""
    entry = _inside(paths.hub_dir(), name.repo_id)
    _check_namespace(entry.parent, name.repo_id)
    return entry


def _check_namespace(namespace: Path, name: str) -> None:
    if store.occupied(namespace) and not store.inside(namespace, paths.hub_dir()):
        raise ValueError(_outside(namespace, name))


def _outside(path: Path, name: str) -> str:
    return (
        f"{path} is a link to {os.path.realpath(path)}, outside the local hub "
        f"{paths.hub_dir()}; refusing to use it for {name}."
    )


def _points_to(entry: Path, version: Path) -> bool:
    return entry.is_symlink() and os.path.realpath(entry) == os.path.realpath(version)


def _inside(root: Path, name: str) -> Path:
    path = root / name
    # A second line of defence behind validate_name: the joined path must stay under root.
    if os.path.commonpath([os.path.abspath(root), os.path.abspath(path)]) != os.path.abspath(root):
        raise ValueError(f"resizer name {name!r} escapes {root}.")
    return path


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p ``folder``; return the folders that this call created, outermost first."""
    missing: list[Path] = []
    current = folder
    while not store.occupied(current):
        missing.append(current)
        current = current.parent
    created: list[Path] = []
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            continue  # made concurrently by someone else: not ours to remove
        except OSError as error:
            for made in reversed(created):
                _rmdir_if_empty(made)
            raise WriteError.from_error(path, error) from None
        created.append(path)
        store.step("made a folder")
    return created


def _rmdir_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (or already gone): leave it
        folder.rmdir()


def _folders(root: Path) -> list[tuple[str, Path]]:
    """``(namespace/name, path)`` for every valid name under ``root``: folders, links (broken
    ones too, to be reported) and pending links whose name is absent; hidden entries and stray
    files are skipped."""
    if not root.is_dir():
        return []
    found = []
    for namespace in sorted(root.iterdir()):
        if not namespace.is_dir():
            continue
        entries = {
            entry.name: entry
            for entry in namespace.iterdir()
            if not entry.name.startswith(".") and (entry.is_dir() or entry.is_symlink())
        }
        entries.update(store.pending_links(namespace))
        for entry_name, path in entries.items():
            name = f"{namespace.name}/{entry_name}"
            if name_problem(name) is None:
                found.append((name, path))
    return sorted(found, key=lambda item: item[0])


def _describe(name: str, source: Source, folder: Path) -> PublishedResizer:
    if source == "local" and not store.inside(folder, paths.hub_dir()):
        return PublishedResizer(name, source, folder, None, None, 0, "", _outside(folder, name))
    if not folder.is_dir():
        problem = f"{folder} is a broken link (to {os.readlink(folder)})"
        return PublishedResizer(name, source, folder, None, None, 0, "", problem=problem)
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
