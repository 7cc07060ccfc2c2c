"""The one way to turn a resizer reference into a folder holding config.json and model.safetensors.

Tried in order:

1. an existing directory;
2. a name in the local hub, ``<hub_dir>/namespace/name``;
3. a resizer shipped with the package, ``downsizenet_hub/pretrained/namespace/name``;
4. a Hugging Face Hub repo id, ``owner/name`` or ``owner/name@revision`` (cache only when offline).

When nothing matches, one FileNotFoundError lists everything that was tried.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from downsizenet_hub import paths
from downsizenet_hub.hub import remote
from downsizenet_hub.hub.errors import HubAccessError
from downsizenet_hub.hub.local import local_path, shipped_path
from downsizenet_hub.hub.names import parse_ref

RefSource = Literal["directory", "local", "shipped", "huggingface"]
#: Files that hold pickled tensors: refused, never loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


@dataclass(frozen=True)
class ResolvedRef:
    """Where a reference led: the folder, which kind of place it is, and the name to show."""

    folder: Path
    source: RefSource
    name: str


def resolve(
    ref: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
    endpoint: str | None = None,
) -> ResolvedRef:
    """Find the resizer ``ref`` names (see the module docstring for the order)."""
    if isinstance(ref, os.PathLike):
        ref = os.fspath(ref)
    if not isinstance(ref, str) or not ref.strip():
        raise ValueError(f"a resizer reference must be a non-empty string or path, got {ref!r}.")
    path = Path(ref).expanduser()
    if path.is_dir():
        if revision is not None:
            raise ValueError(
                f"{ref} is a directory; revision={revision!r} applies to Hub repos only."
            )
        return ResolvedRef(path, "directory", ref)
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise ValueError(
                f"{ref} is a pickled weights file; downsizenet-hub reads weights only from "
                "safetensors and never unpickles."
            )
        raise ValueError(
            f"{ref} is a file; pass the folder holding config.json and model.safetensors."
        )
    tried = [f"directory {path} (does not exist)"]
    try:
        hub_ref = parse_ref(ref, revision)
    except ValueError as error:
        tried.append(f"not a hub name or repo id ({str(error).rstrip('.')})")
        raise FileNotFoundError(_nothing_found(ref, tried)) from None
    if hub_ref.revision is None:
        for source, folder in (
            ("local", local_path(hub_ref.repo_id)),
            ("shipped", shipped_path(hub_ref.repo_id)),
        ):
            if folder.is_dir():
                return ResolvedRef(folder, source, hub_ref.repo_id)  # type: ignore[arg-type]
        tried.append(f"local hub {local_path(hub_ref.repo_id)} (not there)")
        tried.append(f"shipped resizers {shipped_path(hub_ref.repo_id)} (not there)")
    else:
        tried.append(f"local hub {paths.hub_dir()} and shipped resizers (skipped: a revision)")
    where = hub_ref.repo_id + (f"@{hub_ref.revision}" if hub_ref.revision else "")
    try:
        snapshot = remote.download(hub_ref, cache_dir=cache_dir, token=token, endpoint=endpoint)
    except (HubAccessError, FileNotFoundError) as error:
        tried.append(f"Hugging Face Hub {where} ({error})")
        raise FileNotFoundError(_nothing_found(ref, tried)) from None
    return ResolvedRef(snapshot, "huggingface", where)


def _nothing_found(ref: str, tried: list[str]) -> str:
    return f"no resizer found for {ref!r}; tried: " + "; ".join(tried) + "."
