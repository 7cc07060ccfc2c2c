"""One resizer on disk, in the Hugging Face repo layout: ``config.json``, ``model.safetensors``
and ``README.md`` (the card).

``config.json`` of a DownsizeNet is ``{"format_version": 1, "downsizenet": <DownsizeNetConfig>,
"training": <TrainingRecord, optional>}``, as it always was; any other architecture (see
:mod:`.architectures`) writes ``{"format_version": 2, "architecture": "talebi", "talebi":
<TalebiConfig>, "training": ...}``, so that a downsizenet-hub that predates it says to upgrade; a
plugin's resizer also records which plugin wrote it (``"plugin": {"name": ..., "version": ...}``,
provenance only: loading needs the plugin installed, at any version whose config reads it).
Weights are read only from safetensors, never unpickled, and loading is strict: every tensor
present (batch-norm statistics too), none extra, every shape and kind the one the config implies.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from safetensors import SafetensorError

from downsizenet_hub.atomic import write_atomic, write_json_atomic, write_text_atomic
from downsizenet_hub.hub.architectures import (
    DEFAULT_ARCHITECTURE,
    Architecture,
    ResizerConfig,
    architecture,
    architecture_of,
)
from downsizenet_hub.hub.cards import render_card
from downsizenet_hub.hub.record import TrainingRecord
from downsizenet_hub.jsonfile import read_json

if TYPE_CHECKING:  # torch is imported where tensors are read or written, not to list the hub
    import torch
    from torch import nn

    from downsizenet_hub.resizing.config import DownsizeNetConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
#: The version a DownsizeNet's config.json is written with (readable by every release).
FORMAT_VERSION = 1
#: The version of a config.json with an "architecture" key, and the newest this release reads:
#: bumped when config.json changes incompatibly; newer files are refused with a clear message.
ARCHITECTURE_FORMAT_VERSION = 2
#: Weight files that would need unpickling: recognised only to refuse them with a message.
PICKLED_WEIGHTS = ("pytorch_model.bin", "model.bin", "model.pt", "model.pth")
_CONFIG_KEYS = ("format_version", "architecture", "training", "plugin")
#: A config.json is a few KB; anything much larger is not one.
CONFIG_MAX_BYTES = 1024 * 1024


def config_document(config: ResizerConfig, record: TrainingRecord | None) -> dict[str, Any]:
    """The config.json object for ``config`` (any storable architecture) and an optional record."""
    kind = architecture_of(config)
    name = kind.name
    document: dict[str, Any]
    if name == DEFAULT_ARCHITECTURE:
        document = {"format_version": FORMAT_VERSION, name: config.to_dict()}
    else:
        document = {
            "format_version": ARCHITECTURE_FORMAT_VERSION,
            "architecture": name,
            name: config.to_dict() if kind.plugin is None else kind.plugin.config_dict(config),
        }
    if kind.plugin is not None:
        document["plugin"] = {"name": kind.plugin.package, "version": kind.plugin.version}
    if record is not None:
        document["training"] = record.to_dict()
    return document


def write_weights(path: Path, model: nn.Module) -> None:
    """Save the model's state dict to ``path`` as safetensors (atomically).

    Serialised in memory (a resizer is a few KB) and written by Python, so that a full disk is an
    OSError naming ``path`` rather than an error of safetensors' own writer.
    """
    from safetensors.torch import save

    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    data = save(state, metadata={"format": "pt"})
    write_atomic(path, lambda handle: handle.write(data))


def write_model_files(folder: Path, model: nn.Module, record: TrainingRecord | None) -> None:
    """Write config.json and model.safetensors into an existing ``folder``."""
    document = config_document(model_config(model), record)
    write_json_atomic(folder / CONFIG_FILE, document)
    write_weights(folder / WEIGHTS_FILE, model)


def write_card(folder: Path, model: nn.Module, record: TrainingRecord | None, ref: str) -> None:
    """Render the model card into ``folder/README.md``; call after the weights are written."""
    text = render_card(
        model_config(model),
        record,
        ref,
        parameters=sum(p.numel() for p in model.parameters()),
        weights_bytes=(folder / WEIGHTS_FILE).stat().st_size,
    )
    write_text_atomic(folder / CARD_FILE, text)


def write_folder(folder: Path, model: nn.Module, record: TrainingRecord | None, ref: str) -> None:
    """Write the three files of a published resizer into an existing ``folder``.

    ``ref`` is how the card tells readers to load it (a hub name, a repo id or a path).
    """
    write_model_files(folder, model, record)
    write_card(folder, model, record, ref)


def model_config(model: object) -> ResizerConfig:
    """The configuration of a storable resizer module; TypeError in one sentence otherwise."""
    config = getattr(model, "config", None)
    try:
        architecture_of(config)
    except TypeError:
        raise TypeError(
            "expects a resizer of a storable architecture (DownsizeNet, TalebiResizer, "
            "StridedResizer, or a plugin's with a config_class, kept as the module's .config), "
            f"got {type(model).__name__}."
        ) from None
    return config  # type: ignore[return-value]


class StoredConfig(NamedTuple):
    """A config.json read and checked: the architecture it names, looked up once by that name,
    its configuration and the training record."""

    architecture: Architecture
    config: ResizerConfig
    record: TrainingRecord | None


def read_config(path: Path) -> tuple[ResizerConfig, TrainingRecord | None]:
    """Parse and validate config.json; every problem is one sentence naming ``path``.

    The configuration's type says the architecture (see :mod:`.architectures`)."""
    stored = read_stored(path)
    return stored.config, stored.record


def read_stored(path: Path) -> StoredConfig:
    """:func:`read_config` with the architecture config.json names (for loading: the module is
    built as that architecture, not looked up again from the configuration's type)."""
    try:
        document = read_json(path, what="resizer config", max_bytes=CONFIG_MAX_BYTES)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} not found: a published resizer needs a config.json."
        ) from None
    if not isinstance(document, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(document).__name__}.")
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{path}: format_version must be a positive integer, got {version!r}.")
    if version > ARCHITECTURE_FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {version}, newer than this downsizenet-hub reads "
            f"({ARCHITECTURE_FORMAT_VERSION}); upgrade downsizenet-hub to load it."
        )
    kind = architecture(document.get("architecture", DEFAULT_ARCHITECTURE), path)
    expected = [*_CONFIG_KEYS, kind.name]
    unknown = sorted(set(document) - set(expected))
    if unknown:
        raise ValueError(f"{path} has unknown key(s) {unknown}; expected {expected}.")
    if kind.name not in document:
        raise ValueError(f"{path} has no {kind.name!r} object (the {kind.config_type.__name__}).")
    # A config.json is data a user can edit by hand: a wrong type ("3" for a count, a string for
    # an object, a missing field) or a number of hundreds of digits is a fault of the file, so
    # every problem is a ValueError naming it (the configs' own TypeErrors are for API callers).
    try:
        config = kind.parse(document[kind.name])
        training = document.get("training")
        record = None if training is None else TrainingRecord.from_dict(training)
    except (TypeError, ValueError, ArithmeticError) as error:
        raise ValueError(f"{path}: {_one_line(error)}") from None
    return StoredConfig(kind, config, record)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file to CPU tensors; a corrupt or truncated file is a ValueError."""
    if path.exists() and not path.is_file():  # a folder, FIFO, device: never opened
        raise ValueError(f"{path} is not a regular file; a published resizer needs one.")
    if not path.is_file():
        pickled = [name for name in PICKLED_WEIGHTS if (path.parent / name).exists()]
        if pickled:
            raise ValueError(
                f"{path.parent} holds pickled weights ({pickled[0]}) but no {WEIGHTS_FILE}; "
                "downsizenet-hub reads weights only from safetensors and never unpickles."
            )
        raise FileNotFoundError(f"{path} not found: a published resizer needs {WEIGHTS_FILE}.")
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"{path} is not a readable safetensors file ({_one_line(error)}); it may be corrupt "
            "or truncated."
        ) from None


def check_state(
    path: Path, expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]
) -> None:
    """Strict loading: same tensor names, same shapes, floating and finite values where the
    module has floating tensors, the module's own dtype for its integer ones (counters)."""
    import torch

    weight_dtypes = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing tensor(s) {missing}")
        if unexpected:
            parts.append(f"unexpected tensor(s) {unexpected}")
        raise ValueError(f"{path} does not fit its config.json: {' and '.join(parts)}.")
    for key, reference in expected.items():
        tensor = found[key]
        if tensor.shape != reference.shape:
            raise ValueError(
                f"{path}: tensor {key!r} has shape {tuple(tensor.shape)} but the config needs "
                f"{tuple(reference.shape)}."
            )
        if not reference.is_floating_point():  # a count, e.g. batch norm's num_batches_tracked
            if tensor.dtype != reference.dtype:
                raise ValueError(
                    f"{path}: tensor {key!r} has dtype {tensor.dtype}; expected {reference.dtype}."
                )
            continue
        if tensor.dtype not in weight_dtypes:  # float8 has no isfinite, integers no weights
            names = ", ".join(str(dtype).removeprefix("torch.") for dtype in weight_dtypes)
            raise ValueError(
                f"{path}: tensor {key!r} has dtype {str(tensor.dtype).removeprefix('torch.')}; "
                f"expected floating point ({names})."
            )
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{path}: tensor {key!r} contains NaN or infinite values.")


def load_folder(
    folder: Path, build: Callable[[DownsizeNetConfig], nn.Module] | None = None
) -> tuple[nn.Module, TrainingRecord | None]:
    """The resizer stored in ``folder`` (config.json + model.safetensors), in eval mode.

    ``build`` makes a DownsizeNet from its configuration (default: the core
    :class:`~downsizenet_hub.resizing.DownsizeNet`; :mod:`.model` passes its own class); other
    architectures are built by the class :mod:`.architectures` names.

    A link (a local-hub name) is followed once, so both files come from the same version even if
    the name is re-published meanwhile.
    """
    if folder.is_symlink():
        folder = Path(os.path.realpath(folder))
    kind, config, record = read_stored(folder / CONFIG_FILE)
    weights_path = folder / WEIGHTS_FILE
    state = read_weights(weights_path)
    make: Callable[[Any], nn.Module] = (
        build if build is not None and kind.name == DEFAULT_ARCHITECTURE else kind.module_class()
    )
    model = make(config)
    check_state(weights_path, model.state_dict(), state)
    model.load_state_dict(state, strict=True)
    return model.eval(), record


def folder_size(folder: Path) -> int:
    """Bytes of the regular files directly in ``folder``."""
    return sum(entry.stat().st_size for entry in folder.iterdir() if entry.is_file())


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
