"""A study's report files: ``results.json`` (:func:`results_document`) and ``results.md``
(:func:`markdown_report`), written atomically.

The numbers come from :mod:`.summaries` (statistics), the sentences from :mod:`.findings`, the
tables from :mod:`.tables`; their public names are importable from here as well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from downsizenet_hub import __version__
from downsizenet_hub.atomic import write_json_atomic as write_json
from downsizenet_hub.atomic import write_text_atomic as write_text
from downsizenet_hub.data import dataset_info
from downsizenet_hub.study.aggregate import CONFIDENCE
from downsizenet_hub.study.cell_run import CellResult
from downsizenet_hub.study.cells import StudyPlan, count_epochs
from downsizenet_hub.study.config import DataSettings, TransferSettings
from downsizenet_hub.study.findings import RESOLUTION, findings, seeds_needed, width_note
from downsizenet_hub.study.numerics import NUMERICS_VERSION
from downsizenet_hub.study.summaries import HeadToHead, RowSummary, head_to_head, summarise
from downsizenet_hub.study.tables import head_to_head_table, markdown_tables, rich_tables

__all__ = [
    "RESOLUTION",
    "HeadToHead",
    "RowSummary",
    "StudyTotals",
    "findings",
    "head_to_head",
    "head_to_head_table",
    "markdown_report",
    "markdown_tables",
    "results_document",
    "rich_tables",
    "seeds_needed",
    "summarise",
    "width_note",
    "write_json",
    "write_text",
]


@dataclass
class StudyTotals:
    """Bookkeeping shown in the report: how many cells, how many computed now, how long."""

    cells: int
    finished: int
    computed: int
    # Finished cells by the numerics version that computed them (see study/numerics.py).
    by_numerics: dict[int, int]
    cell_seconds: float
    wall_time_s: float
    published: list[str] = field(default_factory=list)


def results_document(
    plan: StudyPlan,
    results: Mapping[str, CellResult],
    summaries: Sequence[RowSummary],
    totals: StudyTotals,
    command: str,
    comparisons: Sequence[HeadToHead] = (),
) -> dict[str, Any]:
    """What ``results.json`` holds: the config, every cell, every row, the head-to-head
    comparisons, the totals."""
    return {
        "study": plan.config.name,
        "command": command,
        "package_version": __version__,
        "numerics_version": NUMERICS_VERSION,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "confidence": CONFIDENCE,
        "config": plan.config.to_dict(),
        "totals": {
            "cells": totals.cells,
            "finished": totals.finished,
            "computed_this_run": totals.computed,
            "finished_by_numerics_version": {str(v): n for v, n in totals.by_numerics.items()},
            "cell_seconds": round(totals.cell_seconds, 1),
            "wall_time_s": round(totals.wall_time_s, 1),
        },
        "published": totals.published,
        "rows": [s.to_json() for s in summaries],
        "head_to_head": [c.to_json() for c in comparisons],
        "cells": [
            results[c.key].to_json() if c.key in results else {"key": c.key, "status": "missing"}
            for c in plan.cells
        ],
    }


def markdown_report(
    plan: StudyPlan,
    summaries: Sequence[RowSummary],
    totals: StudyTotals,
    command: str,
    figures: Sequence[tuple[str, str]],
    comparisons: Sequence[HeadToHead] = (),
    cost: str = "",
    movement: str = "",
    item_maps: str = "",
) -> str:
    """results.md: what ran, the tables, the findings, the figures (``(caption, file)`` pairs)."""
    lines = _overview(plan, summaries, totals, command)
    if comparisons:
        lines += _section("Head to head", _HEAD_TO_HEAD, head_to_head_table(comparisons))
    if cost:
        lines += _section("Cost", _COST, cost)
    if movement:
        lines += _section("How far the learned resizers moved", _MOVEMENT, movement)
    if item_maps:
        lines += _section("How much of a non-image output is a map of the objects", _ITEM_MAPS,
                          item_maps)  # fmt: skip
    if totals.published:
        lines += ["## Published", ""]
        lines += [
            f'- `{name}` (the first seed\'s): `downsizenet_hub.hub.from_pretrained("{name}")`'
            for name in totals.published
        ]
        lines.append("")
    if figures:
        lines += ["## Figures", ""]
        for caption, name in figures:
            lines += [f"![{Path(name).stem}]({name})", "", f"*{caption}*", ""]
    return "\n".join(lines)


def _overview(
    plan: StudyPlan, summaries: Sequence[RowSummary], totals: StudyTotals, command: str
) -> list[str]:
    """results.md's title, what ran, the tables and the findings."""
    config = plan.config
    expected = len(config.seeds)
    lines = [f"# Study `{config.name}`", ""]
    if config.description:
        lines += [config.description, ""]
    return [
        *lines,
        f"Produced by `{command}` (downsizenet-hub {__version__}). Seeds: "
        f"{', '.join(map(str, config.seeds))}. Cells: {totals.finished} of {totals.cells} "
        f"finished ({totals.computed} computed by the last run); training time of all cells "
        f"{totals.cell_seconds / 60:.1f} min, last run {totals.wall_time_s / 60:.1f} min.",
        "",
        f"Data: {_data_line(plan)}",
        "",
        *_numerics_note(totals),
        "Scores are percent: mean ± sample standard deviation over seeds, then the 95% "
        "t-interval of the mean in brackets. Δ is the difference to bilinear under the same seed "
        "(same initialisation and data order), with the 95% t-interval of the per-seed "
        "differences. An interval that includes 0 means no difference is detectable with this "
        "many seeds; one seed gives no interval at all.",
        "",
        markdown_tables(summaries, expected),
        "",
        "## Findings",
        "",
        *[f"- {sentence}" for sentence in findings(summaries)],
        "",
    ]


def _section(title: str, introduction: str, body: str) -> list[str]:
    return [f"## {title}", "", introduction, "", body, ""]


_HEAD_TO_HEAD = (
    "The differences the tables above leave implicit, paired by seed: in each transfer "
    "experiment its resizer pretrained longest against every other resizer in it and "
    "each learned baseline against each fixed resizer, and in segmentation each learned "
    "resizer against each fixed one (bilinear is in the tables)."
)
_COST = (
    "Multiply-adds per image (`torch.utils.flop_counter`; segmentation: the whole "
    "pipeline; detection: the resizer and the VGG16 trunk to conv4_3, the heads being the "
    "same for every resizer), beside bilinear's at the same scale, and the segmentation "
    "cells' training throughput (median over seeds, as measured when they ran: compare "
    "it only between cells that ran on the same machine under the same load)."
)
_MOVEMENT = (
    "From their classical start, per row over its seeds: for a DownsizeNet the share of "
    "each output pixel's weight its coefficients moved from the classical filter of its "
    "neighbourhood (0 % = still classical), on the first 16 validation images as the code "
    "writing this report draws them (noise included); for a "
    "learned baseline, which has no coefficients, the mean |output - start output| in "
    "pixel values (0-1), start being bilinear (talebi) or area (strided). Where it moved"
    " is what the comparison grids below show."
)

_ITEM_MAPS = (
    "Per output channel, the Pearson correlation r between a resizer's output and the item "
    "mask (1 on an item, 0 on the background, area-averaged to the output's size: the share of "
    "each output pixel covered by items), pooled over every pixel of every validation scene of "
    "each family, for the learned resizers whose output need not be an image and for bilinear, "
    "an image, beside them; mean ± std over seeds, and the output's range over all of them. "
    "r near ±1 means the channel is a map of where the objects are rather than a picture of them. "
    "r is signed, and objects of different colours may take opposite signs in one channel; the "
    "r of magnitude correlates |x - median| (each pixel's distance from its image's median in "
    "that channel, mostly background) instead, which is large on every object whatever its sign."
)


def _numerics_note(totals: StudyTotals) -> list[str]:
    """Which numerics version computed the cells (study/numerics.py), and what to do when some
    were computed by another."""
    counts = ", ".join(f"v{v}: {n}" for v, n in sorted(totals.by_numerics.items()))
    line = (
        f"Numerics version of this code: v{NUMERICS_VERSION}; finished cells by version: "
        f"{counts or 'none'}."
    )
    other = sum(n for v, n in totals.by_numerics.items() if v != NUMERICS_VERSION)
    if other:
        line += (
            f" **{other} of the {totals.finished} finished cells were computed under another "
            "numerics version**: their numbers are those of that code; running the study again "
            "recomputes them."
        )
    return [line, ""]


def _data_line(plan: StudyPlan) -> str:
    parts = []
    if plan.cell_count("segmentation"):
        p = plan.config.pretrain
        parts.append(
            f"segmentation on {_data_text(p.data)}, {p.backbone} backbone (width {p.width}), "
            f"batch {p.batch_size}, lr {p.lr:g}"
        )
    transfers = [c for c in plan.cells if c.task == "transfer"]
    if transfers:
        t = transfers[0].settings
        assert isinstance(t, TransferSettings)
        parts.append(
            f"detection on {_data_text(t.data)}, frozen VGG16 ({t.backbone_weights} weights), "
            f"heads trained {count_epochs(t.epochs)}, batch {t.batch_size}, lr {t.lr:g}"
        )
    return "; ".join(parts) + "."


def _data_text(data: DataSettings) -> str:
    size = "x".join(map(str, data.image_size or dataset_info(data.name).image_size))
    if data.name != "scenes":
        return f"{data.name} at {size}"
    train = data.train_images or "default"
    val = data.val_images or "default"
    return f"scenes at {size} ({train} train / {val} val images, scenes seed {data.scenes_seed})"
