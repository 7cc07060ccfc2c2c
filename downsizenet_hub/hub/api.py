"""The one-line entry points behind ``DownsizeNet.save_pretrained / from_pretrained /
push_to_hub`` and the ``downsizenet hub`` commands."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from downsizenet_hub.hub import files, remote
from downsizenet_hub.hub.record import TrainingRecord
from downsizenet_hub.hub.refs import ResolvedRef, resolve
from downsizenet_hub.resizing.config import DownsizeNetConfig


def save_pretrained(
    model: nn.Module,
    save_directory: str | os.PathLike[str],
    *,
    record: TrainingRecord | None = None,
    name: str | None = None,
) -> Path:
    """Write ``model.safetensors``, ``config.json`` and ``README.md`` into ``save_directory``.

    The folder is created if needed; each file is replaced atomically; other files are left
    alone. ``name`` is how the card tells readers to load it (default: the directory path).
    ``model``: a resizer of a storable architecture (see :mod:`.architectures`).
    """
    _check_model(model, record)
    folder = Path(save_directory).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    files.write_folder(folder, model, record, name or str(save_directory))
    return folder


def from_pretrained(
    ref: str | os.PathLike[str],
    *,
    revision: str | None = None,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
    endpoint: str | None = None,
    build: Callable[[DownsizeNetConfig], nn.Module] | None = None,
) -> nn.Module:
    """Load a published resizer (a directory, a local-hub or shipped name, or
    ``hf-hub:owner/name[@revision]`` on the Hugging Face Hub), strictly, in eval mode on
    ``device``, as the class its config.json's architecture names. Only the ``hf-hub:`` form
    goes online. ``build``: the class (or function) that makes a DownsizeNet from its config
    (default: the core DownsizeNet)."""
    model, _ = load(
        ref, revision=revision, cache_dir=cache_dir, token=token, endpoint=endpoint, build=build
    )
    return model.to(device)


def load(
    ref: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
    endpoint: str | None = None,
    build: Callable[[DownsizeNetConfig], nn.Module] | None = None,
) -> tuple[nn.Module, TrainingRecord | None]:
    """Like :func:`from_pretrained` (on CPU), also returning the training record if any."""
    resolved = resolve(ref, revision=revision, cache_dir=cache_dir, token=token, endpoint=endpoint)
    return load_resolved(resolved, build)


def load_resolved(
    resolved: ResolvedRef, build: Callable[[DownsizeNetConfig], nn.Module] | None = None
) -> tuple[nn.Module, TrainingRecord | None]:
    """Load the resizer a reference resolved to (on CPU, in eval mode), with its training record:
    what :func:`load` does once the reference is resolved, for callers that resolved it already
    (the registry's :class:`~downsizenet_hub.registry.ResizerRef`)."""
    return files.load_folder(resolved.folder, build)


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    record: TrainingRecord | None = None,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    force: bool = False,
    endpoint: str | None = None,
) -> str:
    """Upload ``model`` to the Hugging Face Hub as ``repo_id`` (created if needed) through
    huggingface_hub's ``create_repo`` + ``upload_folder``; return the commit URL.

    A repo that already holds a resizer is refused (FileExistsError) unless ``force``. The token
    comes from ``token``, else ``HF_TOKEN`` or ``hf auth login``. Offline, without a token or
    without network, raises :class:`HubAccessError` at once.
    """
    _check_model(model, record)
    return remote.upload(
        model,
        repo_id,
        record=record,
        token=token,
        private=private,
        revision=revision,
        commit_message=commit_message,
        create_pr=create_pr,
        force=force,
        endpoint=endpoint,
    )


def push_published(
    ref: str | os.PathLike[str],
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    force: bool = False,
    endpoint: str | None = None,
) -> str:
    """Upload a published resizer (usually a local-hub name) with its training record; its card
    is rendered again so that it names ``repo_id``. Returns the commit URL."""
    model, record = load(ref)
    return push_to_hub(
        model,
        repo_id,
        record=record,
        token=token,
        private=private,
        revision=revision,
        commit_message=commit_message,
        create_pr=create_pr,
        force=force,
        endpoint=endpoint,
    )


def _check_model(model: object, record: object) -> None:
    files.model_config(model)  # TypeError unless of a storable architecture
    if record is not None and not isinstance(record, TrainingRecord):
        raise TypeError(f"record must be a TrainingRecord or None, got {type(record).__name__}.")
