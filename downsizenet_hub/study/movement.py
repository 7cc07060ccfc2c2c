"""How far the study's learned resizers moved from their classical start (question 5).

Read off the trained resizers the segmentation cells saved (``cells/<key>/resizer/``):

- a DownsizeNet: the share of each output pixel's weight its coefficients moved away from the
  classical filter of its neighbourhood (:func:`~downsizenet_hub.experiments.pretrain.weight_moved`,
  on the first 16 validation images; 0 = still classical, 1 = all of it);
- a learned baseline (talebi, strided), which has no coefficients: the mean ``|output - start
  output|`` in pixel values (0-1) its training record states, ``start`` being bilinear (talebi) or
  area (strided).

Where on the image the weight moved is what the comparison grids (``resizers_val*.png``) show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from downsizenet_hub import hub
from downsizenet_hub.experiments.pretrain import baseline_outputs, weight_moved
from downsizenet_hub.resizing.downsizenet import DownsizeNet
from downsizenet_hub.resizing.strided import StridedResizer
from downsizenet_hub.resizing.talebi import TalebiResizer
from downsizenet_hub.study.aggregate import Estimate, estimate, format_estimate
from downsizenet_hub.study.cell_run import RESIZER_DIR, cell_folder, data_options
from downsizenet_hub.study.cells import Cell, count_epochs
from downsizenet_hub.study.report import RowSummary


@dataclass(frozen=True)
class Movement:
    """One learned row's movement over its seeds, in ``measure``'s units."""

    resizer: str
    variant: str
    scale: float
    epochs: int
    measure: str
    moved: Estimate


WEIGHT = "share of each pixel's weight moved"
OUTPUT = "mean |output - start output|"


def movements(summaries: Sequence[RowSummary], results_dir: Path) -> list[Movement]:
    """A :class:`Movement` per learned segmentation row with saved resizers (each cell once)."""
    found: list[Movement] = []
    seen: set[tuple[str, ...]] = set()
    for summary in summaries:
        cells = [c for c in summary.row.cells.get("segmentation", []) if c.resizer.learned]
        if not cells or tuple(c.key for c in cells) in seen:
            continue
        seen.add(tuple(c.key for c in cells))
        values: list[float] = []
        measure = WEIGHT
        for cell in cells:
            folder = cell_folder(results_dir, cell) / RESIZER_DIR
            if not folder.is_dir():
                continue
            moved, measure = _moved(cell, folder)
            if moved is not None:
                values.append(moved)
        if values:
            first = cells[0]
            found.append(
                Movement(
                    first.resizer.label, first.variant, first.scale, first.epochs, measure,
                    estimate(values),
                )
            )  # fmt: skip
    return found


def _moved(cell: Cell, folder: Path) -> tuple[float | None, str]:
    model, record = hub.load(folder)
    if record is not None and record.outputs is not None:
        return record.outputs.moved_from_start, OUTPUT
    options = data_options(cell.data, cell.variant, cell.scale)
    val_set = options.build("val", "segmentation")
    if isinstance(model, DownsizeNet):
        return 100 * weight_moved(model, val_set, options.resize_kwargs()), WEIGHT
    if isinstance(model, (TalebiResizer, StridedResizer)):
        outputs = baseline_outputs(model, val_set, options.resize_kwargs())
        return outputs.moved_from_start, OUTPUT
    return None, OUTPUT


def movement_table(rows: Sequence[Movement]) -> str:
    """results.md's table: mean ± std [95% CI] over seeds (percent for DownsizeNets)."""
    lines = [
        "| resizer | data | scale | pretraining | moved from its start | unit |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        weight = row.measure == WEIGHT
        unit = "% of each pixel's weight" if weight else "mean abs. pixel value"
        lines.append(
            f"| {row.resizer} | {row.variant} | x{row.scale:g} | {count_epochs(row.epochs)} | "
            f"{format_estimate(row.moved, digits=2 if weight else 4)} | {unit} |"
        )
    return "\n".join(lines)
