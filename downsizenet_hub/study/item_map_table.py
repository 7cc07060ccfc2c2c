"""The report's item-map table: how much of each learned baseline's output (talebi, strided;
bilinear's beside it) is a map of the objects, on each scene family of the study.

Measured by :func:`~downsizenet_hub.study.item_maps.item_correlation` on every validation scene of
each family (:mod:`.families`), with each seed's saved resizer; the table gives the mean and
standard deviation over seeds of each output channel's r, and the output's range over all seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from downsizenet_hub import hub
from downsizenet_hub.registry import create_resizer
from downsizenet_hub.study.cell_run import RESIZER_DIR, cell_folder
from downsizenet_hub.study.cells import Cell, count_epochs
from downsizenet_hub.study.config import BASELINE
from downsizenet_hub.study.families import Family, family_scenes
from downsizenet_hub.study.item_maps import ItemMap, item_correlation
from downsizenet_hub.study.report import RowSummary

_RGB = ("R", "G", "B")


@dataclass(frozen=True)
class ItemMapRow:
    """One resizer on one family: its :class:`ItemMap` per seed (seed None: a fixed resizer)."""

    resizer: str
    variant: str
    scale: float
    epochs: int | None
    family: Family
    maps: tuple[tuple[int | None, ItemMap], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "resizer": self.resizer,
            "variant": self.variant,
            "scale": self.scale,
            "pretrain_epochs": self.epochs,
            "family": self.family.name,
            "family_variant": self.family.variant,
            "seeds": [{"seed": seed, **item_map.to_json()} for seed, item_map in self.maps],
        }


def item_map_rows(
    summaries: Sequence[RowSummary], results_dir: Path, families: Sequence[Family]
) -> list[ItemMapRow]:
    """Per family: bilinear at each learned baseline's settings, then each learned baseline row
    (not DownsizeNets: their output is a convex mix, an image by construction)."""
    rows: list[ItemMapRow] = []
    bilinear_done: set[tuple[Any, ...]] = set()
    for cells in _learned_baselines(summaries):
        first = cells[0]
        models = [
            (cell.seed, hub.load(cell_folder(results_dir, cell) / RESIZER_DIR)[0])
            for cell in cells
            if (cell_folder(results_dir, cell) / RESIZER_DIR).is_dir()
        ]
        if not models:
            continue
        for family in families:
            images, resize = family_scenes(first.data, first.variant, first.scale, family)
            setting = (first.data, first.variant, first.scale, family)
            if setting not in bilinear_done:
                bilinear_done.add(setting)
                fixed = ((None, item_correlation(create_resizer(BASELINE), images, resize)),)
                rows.append(_row(BASELINE, first, None, family, fixed))
            measured = tuple((seed, item_correlation(m, images, resize)) for seed, m in models)
            rows.append(_row(first.resizer.label, first, first.epochs, family, measured))
    order = {family: index for index, family in enumerate(families)}
    return sorted(rows, key=lambda row: order[row.family])  # stable: bilinear first per family


def _row(
    label: str,
    cell: Cell,
    epochs: int | None,
    family: Family,
    maps: tuple[tuple[int | None, ItemMap], ...],
) -> ItemMapRow:
    return ItemMapRow(label, cell.variant, cell.scale, epochs, family, maps)


def _learned_baselines(summaries: Sequence[RowSummary]) -> list[list[Cell]]:
    """The segmentation cells of each learned non-DownsizeNet row, each set once."""
    found: dict[tuple[str, ...], list[Cell]] = {}
    for summary in summaries:
        cells = summary.row.cells.get("segmentation", [])
        if cells and cells[0].resizer.learned and not cells[0].resizer.is_downsizenet:
            found.setdefault(tuple(c.key for c in cells), cells)
    return list(found.values())


def item_map_table(rows: Sequence[ItemMapRow]) -> str:
    """results.md's table: r per output channel (mean ± std over seeds) and the output range."""
    channels = max(len(m.correlations) for row in rows for _, m in row.maps)
    names = [_RGB[c] if channels == 3 else str(c) for c in range(channels)]
    lines = [
        "| resizer | data | scale | pretraining | scenes | seeds | "
        + " | ".join(f"r, channel {name}" for name in names)
        + " | "
        + " | ".join(f"r of magnitude, {name}" for name in names)
        + " | output min | output max |",
        "|---|---|---|---|---|---|" + "---|" * (2 * channels) + "---|---|",
    ]
    for row in rows:
        maps = [m for _, m in row.maps]
        cells = [
            _format_r([_channel(m.correlations, c) for m in maps]) for c in range(channels)
        ] + [_format_r([_channel(m.magnitudes, c) for m in maps]) for c in range(channels)]
        pretraining = "fixed" if row.epochs is None else count_epochs(row.epochs)
        seeds = "-" if row.epochs is None else str(len(maps))
        lines.append(
            f"| {row.resizer} | {row.variant} | x{row.scale:g} | {pretraining} | "
            f"{row.family.label} | {seeds} | {' | '.join(cells)} | "
            f"{min(m.low for m in maps):.3f} | {max(m.high for m in maps):.3f} |"
        )
    return "\n".join(lines)


def _channel(values: tuple[float, ...], channel: int) -> float:
    return values[channel] if channel < len(values) else math.nan


def _format_r(values: list[float]) -> str:
    if any(math.isnan(v) for v in values):  # a constant channel has no correlation
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:+.3f}"
    return f"{statistics.mean(values):+.3f} ± {statistics.stdev(values):.3f}"
