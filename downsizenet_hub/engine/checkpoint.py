"""Checkpoints and run files: atomic writes, the checkpoint's contents, and the resume checks.

Every file a run relies on is written with :func:`downsizenet_hub.atomic.write_atomic` (a
temporary file in the same folder, flushed to disk and renamed over the old one), so a crash or
Ctrl-C while writing leaves the previous version intact, and a full disk or a folder without
write permission is one OSError naming the file and the cause. The temporary files of a process
killed while writing are deleted by the next run in that folder (once that process is gone).
Checkpoints hold tensors and primitives only and are read back with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import torch

# Re-exported: engine code, experiments and benchmarks import it from here, and this module's
# own calls look the name up in its globals at call time (tests patch it to record writes).
from downsizenet_hub.atomic import remove_stale_temporaries
from downsizenet_hub.atomic import write_atomic as write_atomic
from downsizenet_hub.engine.config import (
    RESULT_NEUTRAL_FIELDS,
    EpochRecord,
    TrainConfig,
    final_metrics,
    throughput,
)

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.json"
LOG_NAME = "train.log"
#: Bumped whenever the checkpoint layout changes; older files are refused with a clear message.
CHECKPOINT_FORMAT = "downsizenet-engine/1"


def _json_safe(value: Any) -> Any:
    """Non-finite floats become null (strict JSON has no NaN); tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def remove_stale_run_files(run_dir: Path) -> list[Path]:
    """Delete the temporary files that killed processes left beside the run files of
    ``run_dir`` (never those of a live process); return them."""
    removed: list[Path] = []
    for name in (CHECKPOINT_NAME, METRICS_NAME):
        removed += remove_stale_temporaries(run_dir / name)
    return removed


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    text = json.dumps(_json_safe(payload), indent=2, sort_keys=False) + "\n"
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def write_metrics_json(
    path: Path,
    *,
    status: str,
    error: str | None,
    history: list[EpochRecord],
    config: TrainConfig,
    recipe: dict[str, Any] | None,
    world_size: int,
) -> None:
    """metrics.json: ``status`` (running, completed, interrupted, failed), the error message if
    any, the final metrics, throughput, settings and per-epoch history."""
    remove_stale_run_files(path.parent)
    write_json_atomic(
        path,
        {
            "status": status,
            "error": error,
            "epochs_completed": len(history),
            "final": final_metrics(history),
            "images_per_s": throughput(history),
            "config": config.to_dict(),
            "recipe": recipe,
            "world_size": world_size,
            "history": [record.to_dict() for record in history],
        },
    )


def normalise_recipe(recipe: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``recipe`` as it reads back from JSON (tuples as lists); TypeError if it is not JSON-able."""
    if recipe is None:
        return None
    try:
        return json.loads(json.dumps(dict(recipe)))
    except (TypeError, ValueError) as error:
        raise TypeError(f"fit(recipe=...) must be JSON-serialisable: {error}.") from None


@dataclass
class TrainingState:
    """Everything a resume needs. ``epoch`` epochs are complete; ``step`` > 0 marks a mid-epoch
    checkpoint, ``step`` steps into the next epoch, which also carries ``partial`` (the running
    sums of that epoch) and ``rng`` (every rank's generator states after its last step). ``step``
    equal to the epoch's steps: they are all done but the epoch's evaluation was stopped; a
    resume evaluates."""

    epoch: int
    step: int
    world_size: int
    config: dict[str, Any]
    recipe: dict[str, Any] | None
    # The pipeline's state_dict without its frozen parameters (those with requires_grad=False:
    # a frozen resizer and VGG16 trunk would be most of a transfer checkpoint); ``frozen_sha256``
    # fingerprints them so that a resume refuses different frozen weights.
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any]
    history: list[dict[str, Any]]
    partial: dict[str, float] | None = None
    rng: list[dict[str, Any]] | None = None
    # None: ``model`` is the whole state_dict (checkpoints written before frozen parts were left
    # out, and pipelines with nothing frozen).
    frozen_sha256: str | None = None


def save_checkpoint(path: Path, state: TrainingState) -> None:
    payload = {"format": CHECKPOINT_FORMAT}
    payload.update({f.name: getattr(state, f.name) for f in fields(state)})
    remove_stale_run_files(path.parent)
    write_atomic(path, lambda handle: torch.save(payload, handle))


def load_checkpoint(path: Path) -> TrainingState:
    """Read a checkpoint with ``weights_only=True``; tensors land on the CPU."""
    if not path.is_file():
        raise FileNotFoundError(f"Cannot resume: {path} does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path} is not a readable checkpoint: {error}".splitlines()[0]) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint (found {found!r}).")
    names = {f.name for f in fields(TrainingState)}
    required = {f.name for f in fields(TrainingState) if f.default is MISSING}
    missing = sorted(required - set(payload))
    if missing:
        raise ValueError(f"{path} is not a complete checkpoint: it has no {', '.join(missing)}.")
    state = TrainingState(**{k: v for k, v in payload.items() if k in names})
    problem = _state_problem(state)
    if problem:
        raise ValueError(f"{path} is not a valid checkpoint: {problem}.")
    return state


def _state_problem(state: TrainingState) -> str | None:
    """What is wrong with the types and ranges of a checkpoint read back (None: nothing)."""
    for name in ("epoch", "step", "world_size"):
        value = getattr(state, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{name} must be a non-negative integer, got {value!r}"
    if state.world_size < 1:
        return "world_size must be at least 1"
    for name in ("config", "model", "optimizer", "scheduler", "scaler"):
        if not isinstance(getattr(state, name), dict):
            return f"{name} must be a dictionary, got {type(getattr(state, name)).__name__}"
    if not all(isinstance(value, torch.Tensor) for value in state.model.values()):
        return "model must map names to tensors"
    if not isinstance(state.history, list):
        return f"history must be a list, got {type(state.history).__name__}"
    if state.step > 0 and not isinstance(state.partial, dict):
        return f"step {state.step} is inside an epoch but the epoch's running sums are missing"
    return None


def check_position(state: TrainingState, epochs: int, steps: int, path: Path) -> None:
    """ValueError unless ``state`` stops at a position a run of ``epochs`` epochs of ``steps``
    steps can resume from: ``0 <= epoch <= epochs``, ``0 <= step <= steps`` (``steps``: the
    epoch's steps are done, its evaluation is not), no step past the last epoch."""
    if len(state.history) != state.epoch:
        raise ValueError(
            f"{path} records {state.epoch} finished epoch(s) but the history of "
            f"{len(state.history)}; it is not a checkpoint this engine wrote."
        )
    if state.epoch > epochs or state.step > steps or (state.epoch == epochs and state.step > 0):
        raise ValueError(
            f"{path} stops at epoch {state.epoch}, step {state.step}, outside a run of {epochs} "
            f"epoch(s) of {steps} step(s); it does not belong to this run (resume with the same "
            "settings, or use another run directory)."
        )


def check_resumable(
    state: TrainingState,
    config: dict[str, Any],
    recipe: dict[str, Any] | None,
    world_size: int,
    path: Path,
) -> None:
    """ValueError naming every difference that would make the resumed run differ."""
    differences = [
        f"{name}: {state.config.get(name)!r} there, {config.get(name)!r} here"
        for name in sorted(set(config) | set(state.config))
        if name not in RESULT_NEUTRAL_FIELDS and state.config.get(name) != config.get(name)
    ]
    if state.recipe != recipe:
        differences.append(f"recipe: {state.recipe!r} there, {recipe!r} here")
    if state.world_size != world_size:
        differences.append(f"processes: {state.world_size} there, {world_size} here")
    if differences:
        raise ValueError(
            f"Cannot resume {path}: it was written with different settings "
            f"({'; '.join(differences)}); use the same settings or another run directory."
        )
