"""Running one cell, and finding its result again.

Each cell owns ``<results>/cells/<key>/``::

    cell.json         the result (written last, atomically): its presence means "finished"
    run/<arm>/        the engine's run: metrics.json, train.log, checkpoint.pt (while running)
    resizer/          segmentation cells that trained a DownsizeNet: the resizer, in the hub layout

A killed cell has no ``cell.json``; running it again resumes its run from the last checkpoint
(``resume=True``), or reuses the run if it had finished, so it restarts cleanly either way.

A cell folder is not built aside and renamed into place (the folder publish that scenes builds
and trained resizers use) because its run resumes from what a killed attempt left in it: like
an engine run's ``metrics.json``, its ``cell.json`` is written last, atomically, and found again
only when it names the same spec (:func:`downsizenet_hub.jsonfile.read_matching`).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from downsizenet_hub.atomic import write_json_atomic
from downsizenet_hub.engine import is_main_process
from downsizenet_hub.engine.distributed import barrier
from downsizenet_hub.experiments.common import DataOptions, checkpoint_path
from downsizenet_hub.experiments.pretrain import (
    PretrainOptions,
    publish_resizer,
    run_pretrain,
    training_record,
)
from downsizenet_hub.experiments.transfer import TransferOptions, run_transfer
from downsizenet_hub.hub.record import OutputStatistics
from downsizenet_hub.jsonfile import read_json, read_matching
from downsizenet_hub.study.cells import CELL_FORMAT, Cell
from downsizenet_hub.study.config import DataSettings, PretrainSettings, TransferSettings
from downsizenet_hub.study.numerics import NUMERICS_VERSION, provenance

RESULT_FILE = "cell.json"
RUN_DIR = "run"
RESIZER_DIR = "resizer"


@dataclass
class CellResult:
    """A finished cell: its final metrics (percent) and how long it took when it ran."""

    key: str
    task: str
    resizer: str
    variant: str
    scale: float
    epochs: int
    seed: int
    metrics: dict[str, float]
    # Seconds the cell took when it ran (data, training, evaluation, export).
    wall_time_s: float
    # Training throughput of the run (images/s, evaluation excluded).
    images_per_s: float
    spec: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    # The numerics version of the code that computed it (see :mod:`.numerics`).
    numerics: int = 0
    # Where and by what it was computed: commit, library versions, platform, device, threads.
    provenance: dict[str, Any] = field(default_factory=dict)
    # True when read back from cell.json instead of computed in this call.
    cached: bool = False

    @property
    def current(self) -> bool:
        """Computed under the numerics version of the code running now."""
        return self.numerics == NUMERICS_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("cached")
        return {"format": CELL_FORMAT, **data}


def cell_folder(results_dir: Path, cell: Cell) -> Path:
    return results_dir / "cells" / cell.key


def read_result(results_dir: Path, cell: Cell) -> CellResult | None:
    """The finished result of ``cell``, or None (never run, killed, or written for another spec).

    A result of another numerics version is returned too (``current`` is False): the runner
    recomputes it, the report names its version.
    """
    path = cell_folder(results_dir, cell) / RESULT_FILE
    data = read_matching(path, {"format": CELL_FORMAT, "spec": cell.spec()}, what="cell result")
    if data is None:  # missing, corrupt, or written for another spec: not finished
        return None
    names = set(CellResult.__dataclass_fields__) - {"cached"}
    try:
        result = CellResult(**{k: data[k] for k in names if k in data})
    except TypeError:
        return None
    if not isinstance(result.numerics, int) or not isinstance(result.metrics, dict):
        return None
    result.cached = True
    return result


def unreadable_result(results_dir: Path, cell: Cell) -> str | None:
    """Why the cell's ``cell.json`` exists but cannot be used (None: missing, or fine)."""
    path = cell_folder(results_dir, cell) / RESULT_FILE
    if not path.exists() and not path.is_symlink():
        return None
    if read_result(results_dir, cell) is not None:
        return None
    try:
        data = read_json(path, what="cell result")
    except (OSError, ValueError) as error:
        return str(error).splitlines()[0][:200] or type(error).__name__
    if not isinstance(data, dict) or data.get("format") != CELL_FORMAT:
        return f"{path} is not a {CELL_FORMAT} result"
    if data.get("spec") != cell.spec():
        return f"{path} was written for other settings"
    return f"{path} lacks fields of a result"


def write_result(results_dir: Path, result: CellResult) -> Path:
    """Write ``cell.json`` atomically (rank 0 only); from now on the cell counts as finished."""
    path = results_dir / "cells" / result.key / RESULT_FILE
    if is_main_process():
        write_json_atomic(path, result.to_json())
    return path


def data_options(data: DataSettings, variant: str, scale: float) -> DataOptions:
    return DataOptions(
        name=data.name,
        root=Path(data.root) if data.root else None,
        variant=variant,
        image_size=data.image_size,
        scale=scale,
        train_images=data.train_images,
        val_images=data.val_images,
        scenes_seed=data.scenes_seed,
        items=data.items,
        family=data.family,
    )


def run_cell(
    cell: Cell,
    results_dir: Path,
    *,
    device: str = "auto",
    progress: bool = True,
    command: str = "run_study()",
    baseline_score: float | None = None,
) -> CellResult:
    """Train ``cell`` (resuming its run if a checkpoint is there) and return its result.

    The result is not written here; :func:`write_result` marks the cell finished. A segmentation
    cell that trained a DownsizeNet also exports it to ``resizer/`` with a training record
    (``command``, and the same-seed bilinear ``baseline_score`` when known).
    """
    folder = cell_folder(results_dir, cell)
    recorded = provenance(_resolved_device(device))  # the code as it starts, not as it ends
    started = time.perf_counter()
    # pretrain/transfer print a one-row table per arm; the study prints its own lines instead.
    with contextlib.redirect_stdout(io.StringIO()):
        if cell.task == "segmentation":
            result = _run_segmentation(cell, folder, device, progress, command, baseline_score)
        else:
            result = _run_transfer(cell, results_dir, folder, device, progress)
    result.wall_time_s = time.perf_counter() - started
    result.provenance = recorded
    return result


def _resolved_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _result(cell: Cell, metrics: dict[str, float], images_per_s: float) -> CellResult:
    return CellResult(
        key=cell.key, task=cell.task, resizer=cell.resizer.label, variant=cell.variant,
        scale=cell.scale, epochs=cell.epochs, seed=cell.seed, metrics=dict(metrics),
        wall_time_s=0.0, images_per_s=images_per_s, spec=cell.spec(), numerics=NUMERICS_VERSION,
    )  # fmt: skip


def _run_segmentation(
    cell: Cell,
    folder: Path,
    device: str,
    progress: bool,
    command: str,
    baseline_score: float | None,
) -> CellResult:
    settings = cell.settings
    assert isinstance(settings, PretrainSettings)
    run_dir = folder / RUN_DIR
    arm_dir = run_dir / cell.resizer.ref
    resizer_dir = folder / RESIZER_DIR
    if cell.resizer.learned and _finished_without_weights(arm_dir, resizer_dir):
        if is_main_process():
            shutil.rmtree(arm_dir)  # nothing left to export the resizer from: start it again
        barrier()
    options = PretrainOptions(
        data=data_options(cell.data, cell.variant, cell.scale),
        resizer=cell.resizer.ref,
        resizer_config=cell.resizer.config,
        compare=None,
        backbone=settings.backbone,
        width=settings.width,
        train=cell.train_config(device),
        run_dir=run_dir,
        resume=True,
        progress=progress,
    )
    report = run_pretrain(options)
    arm = report.arms[0]
    result = _result(cell, arm.metrics, arm.images_per_s)
    if cell.resizer.learned:
        if is_main_process() and not resizer_dir.is_dir():
            # The trained resizer as pretrain hands it back (from the run's final weights when
            # the run was reused), recorded and published as pretrain --publish does.
            assert report.resizer is not None
            record = training_record(
                options,
                arm.metrics["miou"],
                baseline="bilinear",
                baseline_score=baseline_score,
                command=command,
                outputs=OutputStatistics.from_dict(arm.extra["outputs"])
                if "outputs" in arm.extra
                else None,
            )
            publish_resizer(report.resizer, record, folder=resizer_dir)
        barrier()  # the transfers that load it may run on every rank
        result.extra["resizer_dir"] = str(Path("cells") / cell.key / RESIZER_DIR)
    return result


def _finished_without_weights(arm_dir: Path, resizer_dir: Path) -> bool:
    """A finished run whose checkpoint was removed before its resizer was exported."""
    return (
        (arm_dir / "metrics.json").is_file()
        and not checkpoint_path(arm_dir).is_file()
        and not resizer_dir.is_dir()
    )


def _run_transfer(
    cell: Cell, results_dir: Path, folder: Path, device: str, progress: bool
) -> CellResult:
    settings = cell.settings
    assert isinstance(settings, TransferSettings)
    resizer: str = cell.resizer.ref
    if cell.source is not None:
        source = cell_folder(results_dir, cell.source) / RESIZER_DIR
        if not source.is_dir():
            raise FileNotFoundError(
                f"the pretrained resizer {source} is missing; delete "
                f"{cell_folder(results_dir, cell.source) / RESULT_FILE} to train it again."
            )
        resizer = str(source)
    options = TransferOptions(
        data=data_options(cell.data, cell.variant, cell.scale),
        resizer=resizer,
        compare=None,
        backbone_weights=settings.backbone_weights,
        head=settings.head,
        train=cell.train_config(device),
        run_dir=folder / RUN_DIR,
        resume=True,
        cache_features=True,
        progress=progress,
    )
    report = run_transfer(options)
    arm = report.arms[0]
    result = _result(cell, arm.metrics, arm.images_per_s)
    result.extra.update(
        backbone=report.backbone,
        frozen_unchanged=arm.extra.get("frozen_unchanged"),
        feature_cache=arm.extra.get("feature_cache"),
    )
    return result


def remove_checkpoints(results_dir: Path, cell: Cell) -> None:
    """Delete a finished cell's checkpoints (~16 MB per segmentation cell, 9 MB per transfer
    cell); metrics and logs stay."""
    if is_main_process():
        for arm_dir in (cell_folder(results_dir, cell) / RUN_DIR).glob("*"):
            if arm_dir.is_dir():
                checkpoint_path(arm_dir).unlink(missing_ok=True)
