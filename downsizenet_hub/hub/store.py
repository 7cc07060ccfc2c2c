"""How the local hub commits a change on disk, so that a process killed at any point leaves the
hub in the state before or after that change, never between, and nothing depends on the clock.

A namespace folder holds one entry per name and a hidden version store::

    <hub>/me/.versions/first.3f9c0a1b2d4e/   config.json, model.safetensors, README.md (immutable)
    <hub>/me/first -> .versions/first.3f9c0a1b2d4e   (a relative symbolic link: the pointer)

Like a git ref, the link alone says which version of ``me/first`` is committed. A version folder is
written and fsynced completely before any link points to it; a change is committed by one
``os.replace`` of the link (or one ``unlink`` for a removal), which is atomic. Version folders that
no link points to, and the hidden leftovers below, are garbage, deleted by :func:`recover`. A name
that is a plain folder (the original layout, and the resizers shipped with the package) is read as
it is; a forced publish replaces it by a link in two renames, and the pending link
``.first.link-<id>`` made before them decides the name if a kill falls between them.

Every change and every recovery of a namespace holds an exclusive ``flock`` on the namespace
folder, so a recovery never touches the half-written version of a live publish: whatever it finds
was left by a process that died.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

from downsizenet_hub import flock
from downsizenet_hub.hub import files

#: The hidden folder of a namespace that holds the version folders.
VERSIONS = ".versions"
#: A pointer about to become ``name``: made once its version is complete, before any rename.
_PENDING = re.compile(r"^\.(?P<name>.+)\.link-[A-Za-z0-9_]+$")
#: Folders set aside by a change: ``removing`` (a removal's or a forced publish's old folder),
#: and ``publishing`` / ``replaced`` (left by versions of downsizenet-hub before the pointers).
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>publishing|replaced|removing)-[A-Za-z0-9_]+$")
FOLDER_MODE = 0o755


def step(label: str) -> None:
    """Called after each change on disk of a publish, removal or recovery. It does nothing: tests
    replace it to stop the process there, as a kill would, and check what the next command sees."""


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def occupied(path: Path) -> bool:
    """Whether ``path`` exists as an entry (a dangling link included)."""
    return path.exists() or path.is_symlink()


def pending_link(entry: Path) -> Path | None:
    """The pending link that decides ``entry`` when ``entry`` is absent (a forced publish killed
    between its renames), else None."""
    if occupied(entry):
        return None
    return pending_links(entry.parent).get(entry.name)


def pending_links(namespace: Path) -> dict[str, Path]:
    """``{name: pending link}`` for the absent names of ``namespace`` that a pending link decides
    (the first link in name order where there are several)."""
    found: dict[str, Path] = {}
    with contextlib.suppress(OSError):
        for candidate in sorted(namespace.iterdir()):
            match = _PENDING.match(candidate.name)
            if match is None or match["name"] in found or not _is_pending(candidate):
                continue
            if not occupied(namespace / match["name"]):
                found[match["name"]] = candidate
    return found


def _is_pending(link: Path) -> bool:
    """A link as :func:`commit` makes them: to an existing version of its own namespace."""
    if not link.is_symlink() or not link.is_dir() or (link.parent / VERSIONS).is_symlink():
        return False
    real_versions = os.path.realpath(link.parent / VERSIONS)
    return os.path.dirname(os.path.realpath(link)) == real_versions


def inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether the real path of ``path`` (links followed) lies in the real path of ``root``."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([real, base]) == base


def fsync_folder(folder: Path) -> None:
    """Make the entries of ``folder`` (renames, links) durable; a no-op where unsupported."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@contextlib.contextmanager
def locked(namespace: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive flock on the folder ``namespace``; yields False (holding nothing) when
    it is gone, or busy and ``wait`` is False.

    The lock is taken on the folder itself, so no lock file is left behind. A folder removed and
    made again while we waited is another inode: the lock is then taken again on the new one.
    """
    while True:
        try:
            descriptor = flock.acquire(namespace, wait=wait, directory=True)
        except (FileNotFoundError, NotADirectoryError):
            yield False
            return
        if descriptor is None:  # busy, and not waiting
            yield False
            return
        try:
            same = os.path.samestat(os.fstat(descriptor), os.stat(namespace))
        except OSError:
            same = False
        if same:
            break
        os.close(descriptor)
        if not namespace.is_dir():
            yield False
            return
    try:
        yield True
    finally:
        flock.release(descriptor)


def versions_folder(namespace: Path) -> Path:
    """``namespace/.versions``; a link there is refused (it could lead outside the hub)."""
    folder = namespace / VERSIONS
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise ValueError(
            f"{folder} is not a folder; the local hub keeps its versions there, remove it."
        )
    return folder


def new_version(namespace: Path, name: str) -> Path:
    """The path of a new version folder for ``name`` (not made yet: see :func:`make_version`)."""
    return versions_folder(namespace) / f"{name}.{new_id()}"


def make_version(version: Path) -> None:
    """Make the empty version folder ``version`` (0755), and its store if needed."""
    versions = version.parent
    if not versions.is_dir():
        versions.mkdir()
        versions.chmod(FOLDER_MODE)
        step("made the version store")
    version.mkdir()
    version.chmod(FOLDER_MODE)
    step("made the version folder")


def commit(version: Path, entry: Path) -> None:
    """Point ``entry`` at the complete ``version`` folder (same namespace), replacing what was
    there. On an exception before the commit the entry is as it was; a kill is put right by
    :func:`recover`."""
    namespace = entry.parent
    for folder in (version, version.parent, namespace):  # the version is durable before its link
        fsync_folder(folder)
    link = namespace / f".{entry.name}.link-{new_id()}"
    aside: Path | None = None
    try:
        os.symlink(f"{VERSIONS}/{version.name}", link)
        step("made the pending link")
        if entry.is_dir() and not entry.is_symlink():  # the original layout: a plain folder
            aside = namespace / f".{entry.name}.removing-{new_id()}"
            os.rename(entry, aside)
            step("set the plain folder aside")
        os.replace(link, entry)  # the commit
    except BaseException:
        if aside is not None and not occupied(entry):
            os.rename(aside, entry)
        with contextlib.suppress(OSError):
            link.unlink()
        raise
    fsync_folder(namespace)
    step("committed")
    if aside is not None:
        with contextlib.suppress(OSError):  # committed: what is left is deleted by recover()
            remove_tree(aside)


def uncommit(entry: Path) -> None:
    """Remove the name ``entry`` (a link: the link only; a plain folder: set aside first), then
    collect what it left."""
    namespace = entry.parent
    if entry.is_symlink():
        entry.unlink()  # the commit: the name is gone, whatever happens to the cleanup
        fsync_folder(namespace)
        step("unlinked the name")
    else:
        trash = namespace / f".{entry.name}.removing-{new_id()}"
        os.rename(entry, trash)  # the commit
        fsync_folder(namespace)
        step("set the plain folder aside")
        remove_tree(trash)
    collect(namespace)


def recover(namespace: Path) -> None:
    """Finish what a killed process left in ``namespace`` (call with the lock held).

    A pending link whose name is absent takes the name (the kill fell between the two renames of
    a forced publish over a plain folder: its new version is complete); other pending links,
    ``.removing-*`` and ``.publishing-*`` folders, and unreferenced versions are deleted. A
    ``.replaced-*`` folder (an old version set aside by a downsizenet-hub before the pointers)
    goes back only where its name is absent and it is whole, else it is deleted.
    """
    if not namespace.is_dir():
        return
    for leftover in sorted(namespace.iterdir()):
        pending = _PENDING.match(leftover.name)
        if pending and leftover.is_symlink():
            entry = namespace / pending["name"]
            if not occupied(entry) and _is_pending(leftover):
                os.replace(leftover, entry)
                fsync_folder(namespace)
                step("recovered a pending link")
            else:
                leftover.unlink()
                step("deleted a pending link")
            continue
        match = _LEFTOVER.match(leftover.name)
        if match is None:
            continue
        entry = namespace / match["name"]
        if match["kind"] == "replaced" and not occupied(entry) and _whole(leftover):
            os.rename(leftover, entry)
            step("put a replaced folder back")
        else:
            remove_tree(leftover)
    collect(namespace)


def collect(namespace: Path) -> None:
    """Delete the version folders that no link in ``namespace`` points to (lock held)."""
    versions = namespace / VERSIONS
    if versions.is_symlink() or not versions.is_dir():
        return
    real_versions = os.path.realpath(versions)
    referenced = set()
    for entry in os.scandir(namespace):
        if entry.is_symlink():
            real = os.path.realpath(entry.path)
            if os.path.dirname(real) == real_versions:
                referenced.add(os.path.basename(real))
    for version in sorted(versions.iterdir()):
        if version.name not in referenced:
            remove_tree(version)
    with contextlib.suppress(OSError):  # not empty: leave it
        versions.rmdir()
        step("deleted the empty version store")


def remove_tree(path: Path) -> None:
    """Delete ``path`` and, if it is a real folder, everything in it; links are removed, never
    followed. One entry at a time, with a :func:`step` after each."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        step("deleted a file")
        return
    for folder, folders, names in os.walk(path, topdown=False):
        for name in names:
            os.unlink(os.path.join(folder, name))
            step("deleted a file")
        for name in folders:  # links to folders are listed here and are not walked into
            child = os.path.join(folder, name)
            if os.path.islink(child):
                os.unlink(child)
            else:
                os.rmdir(child)
            step("deleted a folder")
    os.rmdir(path)
    step("deleted a folder")


def _whole(folder: Path) -> bool:
    if folder.is_symlink() or not all(
        (folder / name).is_file()
        for name in (files.CONFIG_FILE, files.WEIGHTS_FILE, files.CARD_FILE)
    ):
        return False
    try:
        files.load_folder(folder)
    except (OSError, TypeError, ValueError):
        return False
    return True
