"""How far the study's learned resizers moved from their classical start (question 5).

Read off the trained resizers the segmentation cells saved (``cells/<key>/resizer/``):

- a DownsizeNet: the share of each output pixel's weight its coefficients moved away from the
  classical filter of its neighbourhood (:func:`~downsizenet_hub.experiments.pretrain.weight_moved`,
  on the first 16 validation images; 0 = still classical, 1 = all of it);
- a learned baseline (talebi, strided), which has no coefficients: the mean ``|output - start
  output|`` in pixel values (0-1) its training record states, ``start`` being bilinear (talebi) or
  area (strided).

In a study with scene families (:mod:`.families`) both are measured on the validation scenes of
each family, one column each: the DownsizeNet's share as above, a learned baseline's
``|output - start output|`` computed there on the first 16 images (the training record holds it
for the pretraining's scenes only).

Where on the image the weight moved is what the comparison grids (``resizers_val*.png``) show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from downsizenet_hub import hub
from downsizenet_hub.experiments.output_stats import mean_abs_difference
from downsizenet_hub.experiments.pretrain import MOVED_IMAGES, baseline_outputs, weight_moved
from downsizenet_hub.hub.record import TrainingRecord
from downsizenet_hub.registry import create_resizer
from downsizenet_hub.resizing.downsizenet import DownsizeNet
from downsizenet_hub.resizing.strided import StridedResizer
from downsizenet_hub.resizing.talebi import TalebiResizer
from downsizenet_hub.study.aggregate import Estimate, estimate, format_estimate
from downsizenet_hub.study.cell_run import RESIZER_DIR, cell_folder, data_options
from downsizenet_hub.study.cells import Cell, count_epochs
from downsizenet_hub.study.families import Family, family_scenes, first_images
from downsizenet_hub.study.report import RowSummary


@dataclass(frozen=True)
class Movement:
    """One learned row's movement over its seeds, in ``measure``'s units: one estimate per scene
    family of the study, or one (the cells' own data) in a study without families."""

    resizer: str
    variant: str
    scale: float
    epochs: int
    measure: str
    moved: tuple[Estimate, ...]


WEIGHT = "share of each pixel's weight moved"
OUTPUT = "mean |output - start output|"


def movements(
    summaries: Sequence[RowSummary], results_dir: Path, families: Sequence[Family] = ()
) -> list[Movement]:
    """A :class:`Movement` per learned segmentation row with saved resizers (each cell once),
    measured on each of ``families`` (none: on the cells' own data)."""
    found: list[Movement] = []
    seen: set[tuple[str, ...]] = set()
    for summary in summaries:
        cells = [c for c in summary.row.cells.get("segmentation", []) if c.resizer.learned]
        if not cells or tuple(c.key for c in cells) in seen:
            continue
        seen.add(tuple(c.key for c in cells))
        per_seed: list[list[float]] = []  # per seed, a value per column
        measure = WEIGHT
        for cell in cells:
            folder = cell_folder(results_dir, cell) / RESIZER_DIR
            if folder.is_dir():
                values, measure = _moved(cell, folder, families)
                if values is not None:
                    per_seed.append(values)
        if per_seed:
            first = cells[0]
            moved = tuple(estimate(list(column)) for column in zip(*per_seed, strict=True))
            found.append(
                Movement(first.resizer.label, first.variant, first.scale, first.epochs, measure,
                         moved)
            )  # fmt: skip
    return found


def _moved(cell: Cell, folder: Path, families: Sequence[Family]) -> tuple[list[float] | None, str]:
    """The cell's movement on each family (or on its own data) and its measure."""
    model, record = hub.load(folder)
    if not families:
        return _moved_on_own_data(cell, model, record)
    if not isinstance(model, (DownsizeNet, TalebiResizer, StridedResizer)):
        return None, OUTPUT
    values = []
    for family in families:
        images, resize = family_scenes(cell.data, cell.variant, cell.scale, family)
        if isinstance(model, DownsizeNet):
            values.append(100 * weight_moved(model, images, resize))
            continue
        start = create_resizer(type(model).starts_as)
        batch = first_images(images, MOVED_IMAGES)
        values.append(mean_abs_difference(model, start, batch, **resize))
    return values, WEIGHT if isinstance(model, DownsizeNet) else OUTPUT


def _moved_on_own_data(
    cell: Cell, model: nn.Module, record: TrainingRecord | None
) -> tuple[list[float] | None, str]:
    """As before scene families: a learned baseline's movement as its training record states."""
    if record is not None and record.outputs is not None:
        return [record.outputs.moved_from_start], OUTPUT
    options = data_options(cell.data, cell.variant, cell.scale)
    val_set = options.build("val", "segmentation")
    if isinstance(model, DownsizeNet):
        return [100 * weight_moved(model, val_set, options.resize_kwargs())], WEIGHT
    if isinstance(model, (TalebiResizer, StridedResizer)):
        outputs = baseline_outputs(model, val_set, options.resize_kwargs())
        return [outputs.moved_from_start], OUTPUT
    return None, OUTPUT


def movement_table(rows: Sequence[Movement], families: Sequence[Family] = ()) -> str:
    """results.md's table: mean ± std [95% CI] over seeds (percent for DownsizeNets), a column
    per family of the study (preceded by a line saying where each was measured)."""
    columns = [f"moved on {f.label}" for f in families] or ["moved from its start"]
    lines = [
        f"| resizer | data | scale | pretraining | {' | '.join(columns)} | unit |",
        "|---|---|---|---|" + "---|" * len(columns) + "---|",
    ]
    for row in rows:
        weight = row.measure == WEIGHT
        unit = "% of each pixel's weight" if weight else "mean abs. pixel value"
        moved = " | ".join(format_estimate(m, digits=2 if weight else 4) for m in row.moved)
        lines.append(
            f"| {row.resizer} | {row.variant} | x{row.scale:g} | {count_epochs(row.epochs)} | "
            f"{moved} | {unit} |"
        )
    table = "\n".join(lines)
    return f"{FAMILIES_NOTE}\n\n{table}" if families else table


FAMILIES_NOTE = (
    "Each column is measured on that scene family's validation scenes (the pretraining's scene "
    "settings with the family's objects and backgrounds); a learned baseline's |output - start "
    "output| there on the first 16 of them, computed for this report."
)
