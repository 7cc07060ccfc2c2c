"""The one way to turn a resizer reference into a folder holding config.json and model.safetensors.

A reference is one of, following timm's convention:

1. ``hf-hub:owner/name`` or ``hf-hub:owner/name@revision``: a Hugging Face Hub repository, fetched
   into the Hugging Face cache (cache only when offline). Only this form goes online.
2. an existing directory;
3. ``namespace/name``: the local hub, ``<hub_dir>/namespace/name``, then the resizers shipped with
   the package, ``downsizenet_hub/pretrained/namespace/name``. Never the network.

When nothing matches, one FileNotFoundError lists everything that was tried.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from downsizenet_hub.hub.errors import HubAccessError
from downsizenet_hub.hub.files import CARD_FILE
from downsizenet_hub.hub.local import hub_entry, shipped_entry
from downsizenet_hub.hub.names import HF_HUB_PREFIX, hf_hub_part, parse_ref
from downsizenet_hub.jsonfile import read_regular_bytes

RefSource = Literal["directory", "local", "shipped", "huggingface"]
#: Files that hold pickled tensors: refused, never loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
#: A model card is a few KB; ``hub show`` refuses one past this instead of reading it whole.
CARD_MAX_BYTES = 16 * 1024 * 1024


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
    """Find the resizer ``ref`` names (see the module docstring for the forms).

    ``revision``, ``cache_dir``, ``token`` and ``endpoint`` apply to ``hf-hub:`` references;
    a revision given with any other reference is refused (ValueError).
    """
    if isinstance(ref, os.PathLike):
        ref = os.fspath(ref)
    if not isinstance(ref, str) or not ref.strip():
        raise ValueError(f"a resizer reference must be a non-empty string or path, got {ref!r}.")
    return locate(ref, revision=revision, cache_dir=cache_dir, token=token, endpoint=endpoint)


def locate(
    ref: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
    endpoint: str | None = None,
) -> ResolvedRef:
    """:func:`resolve` for a reference already checked to be a non-empty string (by
    :func:`resolve`, or by the registry where a resizer name enters): the name is parsed once,
    into a :class:`~.names.HubRef`, and the folder found from that."""
    if hf_hub_part(ref) is not None:
        return _resolve_remote(ref, revision, cache_dir, token, endpoint)
    path = Path(ref).expanduser()
    if revision is not None:
        raise ValueError(
            f"revision={revision!r} applies to Hugging Face Hub references only: write "
            f"{HF_HUB_PREFIX}owner/name (or {HF_HUB_PREFIX}owner/name@revision)."
        )
    if path.is_dir():
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
        hub_ref = parse_ref(ref)
    except ValueError as error:
        tried.append(f"not a hub name ({str(error).rstrip('.')})")
        raise FileNotFoundError(_nothing_found(ref, tried)) from None
    if hub_ref.revision is not None:
        raise ValueError(
            f"{ref!r} names a revision, which only Hugging Face Hub references have: write "
            f"{HF_HUB_PREFIX}{ref}."
        )
    local, shipped = hub_entry(hub_ref), shipped_entry(hub_ref)
    if local.is_dir():
        return ResolvedRef(local, "local", hub_ref.repo_id)
    if shipped.is_dir():
        return ResolvedRef(shipped, "shipped", hub_ref.repo_id)
    tried.append(f"local hub {local} (not there)")
    tried.append(f"shipped resizers {shipped} (not there)")
    raise FileNotFoundError(
        _nothing_found(ref, tried)[:-1]
        + f"; for the Hugging Face Hub, write {HF_HUB_PREFIX}{hub_ref.repo_id}."
    )


def _resolve_remote(
    ref: str,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    token: str | bool | None,
    endpoint: str | None,
) -> ResolvedRef:
    from downsizenet_hub.hub import remote  # huggingface_hub is imported only for hf-hub: refs

    hub_ref = parse_ref(ref, revision)  # ValueError for a malformed repo id or revision
    where = HF_HUB_PREFIX + hub_ref.repo_id + (f"@{hub_ref.revision}" if hub_ref.revision else "")
    try:
        snapshot = remote.download(hub_ref, cache_dir=cache_dir, token=token, endpoint=endpoint)
    except (HubAccessError, FileNotFoundError) as error:
        raise FileNotFoundError(
            f"no resizer found for {ref!r} on the Hugging Face Hub: {str(error).rstrip('.')}."
        ) from None
    return ResolvedRef(snapshot, "huggingface", where)


def _nothing_found(ref: str, tried: list[str]) -> str:
    return f"no resizer found for {ref!r}; tried: " + "; ".join(tried) + "."


def show(ref: str | os.PathLike[str]) -> str:
    """The model card (README.md) of a published resizer."""
    resolved = resolve(ref)
    card = resolved.folder / CARD_FILE
    if not card.exists():
        raise FileNotFoundError(f"{resolved.name} has no model card ({card} is missing).")
    data = read_regular_bytes(card, CARD_MAX_BYTES + 1, what="model card")
    if len(data) > CARD_MAX_BYTES:
        raise ValueError(f"model card {card} is larger than {CARD_MAX_BYTES} bytes; not shown.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"model card {card} is not UTF-8 text ({error.reason}).") from None
