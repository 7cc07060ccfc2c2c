"""From finished cells to results: row summaries, ``results.json``, ``results.md`` and rich tables.

Scores are percent. Every row gives the mean over seeds with the sample standard deviation and
the 95% t-interval of the mean, and the difference to bilinear paired by seed with its own
interval (see :mod:`.aggregate`). The findings list reads each difference mechanically: an
interval that excludes zero is reported as a difference, one that includes zero as none
detectable at this number of seeds, one seed as no interval at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.table import Table

from downsizenet_hub import __version__
from downsizenet_hub.atomic import write_atomic
from downsizenet_hub.data import dataset_info
from downsizenet_hub.study.aggregate import (
    CONFIDENCE,
    Estimate,
    estimate,
    format_estimate,
    paired_difference,
    t_quantile,
)
from downsizenet_hub.study.cell_run import CellResult
from downsizenet_hub.study.cells import (
    METRIC_NAMES,
    METRICS,
    PRIMARY_METRIC,
    Cell,
    Row,
    StudyPlan,
    count_epochs,
)
from downsizenet_hub.study.config import DataSettings, TransferExperiment, TransferSettings
from downsizenet_hub.study.numerics import NUMERICS_VERSION


@dataclass
class RowSummary:
    """One row's numbers: per task, the estimates of each metric, the baseline's primary score
    and the paired difference to it."""

    row: Row
    scores: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    baseline: dict[str, Estimate] = field(default_factory=dict)
    difference: dict[str, Estimate | None] = field(default_factory=dict)
    # Seeds with a finished cell, per task.
    seeds: dict[str, list[int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        row = self.row
        return {
            "experiment": row.experiment,
            "kind": row.kind,
            "variant": row.variant,
            "scale": row.scale,
            "resizer": row.resizer.label,
            "resizer_config": row.resizer.config if row.resizer.learned else None,
            "pretrain_epochs": row.pretrain_epochs,
            "seeds": self.seeds,
            "scores": {
                task: {metric: e.to_dict() for metric, e in metrics.items()}
                for task, metrics in self.scores.items()
            },
            "baseline": {task: e.to_dict() for task, e in self.baseline.items()},
            "difference_to_bilinear": {
                task: None if e is None else e.to_dict() for task, e in self.difference.items()
            },
            "cells": {task: [c.key for c in cells] for task, cells in row.cells.items()},
        }


def _by_seed(cells: Sequence[Cell], results: Mapping[str, CellResult], metric: str) -> dict:
    return {
        c.seed: results[c.key].metrics[metric]
        for c in cells
        if c.key in results and metric in results[c.key].metrics
    }


def summarise(plan: StudyPlan, results: Mapping[str, CellResult]) -> list[RowSummary]:
    """A :class:`RowSummary` per row of the plan, from the cells that have finished."""
    summaries = []
    for row in plan.rows:
        summary = RowSummary(row)
        for task, cells in row.cells.items():
            primary = PRIMARY_METRIC[task]
            summary.scores[task] = {}
            for metric in METRICS[task]:
                values = _by_seed(cells, results, metric)
                if values:
                    summary.scores[task][metric] = estimate([values[s] for s in sorted(values)])
            values = _by_seed(cells, results, primary)
            summary.seeds[task] = sorted(values)
            reference = _by_seed(row.baseline.get(task, []), results, primary)
            if reference:
                summary.baseline[task] = estimate([reference[s] for s in sorted(reference)])
            summary.difference[task] = (
                None if row.is_baseline else paired_difference(values, reference)
            )
        summaries.append(summary)
    return summaries


# -- tables -------------------------------------------------------------------------------------


def _columns(kind: str) -> list[str]:
    if kind == "segmentation":
        return ["data", "scale", "resizer", "mIoU", "Δ mIoU vs bilinear", "seeds"]
    return [
        "data", "scale", "resizer", "pretraining", "seg mIoU", "bilinear seg mIoU",
        "Δ seg mIoU", "det mAP@0.5", "Δ mAP@0.5 vs bilinear", "seeds",
    ]  # fmt: skip


def _cells_text(summary: RowSummary, task: str) -> tuple[str, str]:
    score = summary.scores.get(task, {}).get(PRIMARY_METRIC[task])
    if summary.row.is_baseline:
        difference = "reference" if task in summary.row.cells else "-"
    else:
        difference = format_estimate(summary.difference.get(task), signed=True)
    return format_estimate(score), difference


def _row_cells(summary: RowSummary, expected: int) -> list[str]:
    row = summary.row
    seeds = max((len(s) for s in summary.seeds.values()), default=0)
    head = [row.variant, f"x{row.scale:g}", row.resizer.label]
    tail = [f"{seeds}/{expected}" if seeds < expected else str(seeds)]
    if row.kind == "segmentation":
        return [*head, *_cells_text(summary, "segmentation"), *tail]
    pretraining = "-" if row.pretrain_epochs is None else count_epochs(row.pretrain_epochs)
    if "segmentation" in row.cells:
        score, difference = _cells_text(summary, "segmentation")
        reference = format_estimate(summary.baseline.get("segmentation"))
        segmentation = [score, reference, difference]
    else:
        segmentation = ["-", "-", "-"]
    return [*head, pretraining, *segmentation, *_cells_text(summary, "transfer"), *tail]


def _experiments(summaries: Sequence[RowSummary]) -> dict[str, list[RowSummary]]:
    grouped: dict[str, list[RowSummary]] = {}
    for summary in summaries:
        grouped.setdefault(summary.row.experiment, []).append(summary)
    return grouped


def rich_tables(summaries: Sequence[RowSummary], expected_seeds: int) -> list[Table]:
    """One rich table per experiment, the same columns as results.md."""
    tables = []
    for title, rows in _experiments(summaries).items():
        table = Table(title=title, caption="mean ± std [95% CI]; Δ paired by seed")
        for column in _columns(rows[0].row.kind):
            table.add_column(column, justify="left" if column in ("data", "resizer") else "right")
        for summary in rows:
            table.add_row(*_row_cells(summary, expected_seeds))
        tables.append(table)
    return tables


def markdown_tables(summaries: Sequence[RowSummary], expected_seeds: int) -> str:
    parts = []
    for title, rows in _experiments(summaries).items():
        columns = _columns(rows[0].row.kind)
        lines = [f"### {title}", "", "| " + " | ".join(columns) + " |"]
        lines.append("|" + "|".join("---" for _ in columns) + "|")
        for summary in rows:
            lines.append("| " + " | ".join(_row_cells(summary, expected_seeds)) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def findings(summaries: Sequence[RowSummary]) -> list[str]:
    """One sentence per compared row and task, read off the paired difference's interval."""
    sentences = []
    for summary in summaries:
        row = summary.row
        if row.is_baseline:
            continue
        where = f"{row.variant}, x{row.scale:g}"
        if row.pretrain_epochs is not None:
            where += f", pretrained {count_epochs(row.pretrain_epochs)}"
        for task, difference in summary.difference.items():
            metric = METRIC_NAMES[PRIMARY_METRIC[task]]
            label = f"{row.resizer.label} vs bilinear, {task} {metric} ({where})"
            if difference is None:
                sentences.append(f"{label}: no paired result yet.")
            elif difference.n == 1:
                sentences.append(
                    f"{label}: {difference.mean:+.2f} from one seed; no interval, so it cannot "
                    "be told apart from seed-to-seed noise."
                )
            else:
                interval = f"[{difference.ci_low:+.2f}, {difference.ci_high:+.2f}]"
                if difference.excludes_zero():
                    verdict = "better" if difference.mean > 0 else "worse"
                    sentence = (
                        f"{label}: {difference.mean:+.2f}, 95% CI {interval} excludes 0: "
                        f"{verdict} than bilinear at {difference.n} seeds."
                    )
                else:
                    sentence = (
                        f"{label}: {difference.mean:+.2f}, 95% CI {interval} includes 0: no "
                        f"difference detectable at {difference.n} seeds."
                    )
                sentences.append(sentence + width_note(difference))
    return sentences


#: The resolution a comparison should reach: a 95% interval no wider than this many points.
RESOLUTION = 1.0


def seeds_needed(difference: Estimate, half_width: float = RESOLUTION) -> int | None:
    """How many seeds would give a 95% interval of ``+-half_width`` at this spread (None: one
    seed, no spread known; capped at 1000)."""
    if difference.std is None:
        return None
    n = 2
    while (
        t_quantile(0.5 + difference.confidence / 2, n - 1) * difference.std / math.sqrt(n)
        > half_width
        and n < 1000
    ):
        n += 1
    return n


def width_note(difference: Estimate) -> str:
    """A sentence when the interval is wider than +-1 point, with the seeds it would take."""
    half = difference.half_width
    if half is None or half <= RESOLUTION:
        return ""
    needed = seeds_needed(difference)
    return (
        f" The interval is ±{half:.2f} wide, wider than ±{RESOLUTION:g}: at this spread about "
        f"{needed} seeds would narrow it to ±{RESOLUTION:g}."
    )


@dataclass(frozen=True)
class HeadToHead:
    """A paired difference between two compared resizers (neither of them bilinear)."""

    experiment: str
    variant: str
    scale: float
    task: str
    first: str
    second: str
    difference: Estimate

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment, "variant": self.variant, "scale": self.scale,
            "task": self.task, "first": self.first, "second": self.second,
            "difference": self.difference.to_dict(),
        }  # fmt: skip


def head_to_head(plan: StudyPlan, results: Mapping[str, CellResult]) -> list[HeadToHead]:
    """The comparisons bilinear-relative tables leave implicit, paired by seed: in a transfer
    experiment, its resizer pretrained longest against every other resizer in it (the learned
    baselines, area, ...) and each learned baseline against each fixed resizer, in each task both
    have; in a segmentation experiment, each learned resizer against each fixed one other than
    bilinear at the same scale and data."""
    transfers = {e.title: e for e in plan.config.experiments if isinstance(e, TransferExperiment)}
    groups: dict[tuple[str, str, float], list[Row]] = {}
    for row in plan.rows:
        if not row.is_baseline:
            groups.setdefault((row.experiment, row.variant, row.scale), []).append(row)
    found = []
    for (title, variant, scale), rows in groups.items():
        experiment = transfers.get(title)
        if experiment is not None:
            main = [r for r in rows if r.resizer == experiment.resizer]
            if not main:
                continue
            first = max(main, key=lambda r: r.pretrain_epochs or 0)
            pairs = [(first, r) for r in rows if r.resizer != experiment.resizer]
            others = [r for r in rows if r.resizer.learned and r.resizer != experiment.resizer]
            pairs += [(a, b) for a in others for b in rows if not b.resizer.learned]
        else:
            pairs = [
                (a, b) for a in rows if a.resizer.learned for b in rows if not b.resizer.learned
            ]
        for a, b in pairs:
            for task in (t for t in a.cells if t in b.cells):
                metric = PRIMARY_METRIC[task]
                ours, theirs = (_by_seed(r.cells[task], results, metric) for r in (a, b))
                difference = paired_difference(ours, theirs)
                if difference is not None:
                    found.append(
                        HeadToHead(title, variant, scale, task, _name(a), _name(b), difference)
                    )
    return found


def _name(row: Row) -> str:
    if row.pretrain_epochs is None or row.kind != "transfer":
        return row.resizer.label
    return f"{row.resizer.label} ({count_epochs(row.pretrain_epochs)})"


def head_to_head_table(comparisons: Sequence[HeadToHead]) -> str:
    """results.md's head-to-head table, one line per comparison and task."""
    lines = [
        "| experiment | data | scale | task | comparison | Δ [95% CI] | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        d = c.difference
        metric = METRIC_NAMES[PRIMARY_METRIC[c.task]]
        if d.n == 1:
            verdict = "one seed: no interval"
        elif d.excludes_zero():
            verdict = f"{c.first if d.mean > 0 else c.second} better"
        else:
            verdict = "no difference detectable"
        lines.append(
            f"| {c.experiment} | {c.variant} | x{c.scale:g} | {c.task} {metric} | "
            f"{c.first} − {c.second} | {format_estimate(d, signed=True)} | {verdict} |"
        )
    return "\n".join(lines)


# -- files --------------------------------------------------------------------------------------


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
) -> str:
    """results.md: what ran, the tables, the findings, the figures (``(caption, file)`` pairs)."""
    config = plan.config
    expected = len(config.seeds)
    lines = [f"# Study `{config.name}`", ""]
    if config.description:
        lines += [config.description, ""]
    lines += [
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
    if comparisons:
        lines += [
            "## Head to head",
            "",
            "The differences the tables above leave implicit, paired by seed: in each transfer "
            "experiment its resizer pretrained longest against every other resizer in it and "
            "each learned baseline against each fixed resizer, and in segmentation each learned "
            "resizer against each fixed one (bilinear is in the tables).",
            "",
            head_to_head_table(comparisons),
            "",
        ]
    if cost:
        lines += [
            "## Cost",
            "",
            "Multiply-adds per image (`torch.utils.flop_counter`; segmentation: the whole "
            "pipeline; detection: the resizer and the VGG16 trunk to conv4_3, the heads being the "
            "same for every resizer), beside bilinear's at the same scale, and the segmentation "
            "cells' training throughput (median over seeds, as measured when they ran: compare "
            "it only between cells that ran on the same machine under the same load).",
            "",
            cost,
            "",
        ]
    if movement:
        lines += [
            "## How far the learned resizers moved",
            "",
            "From their classical start, per row over its seeds: for a DownsizeNet the share of "
            "each output pixel's weight its coefficients moved from the classical filter of its "
            "neighbourhood (0 % = still classical), on the first 16 validation images; for a "
            "learned baseline, which has no coefficients, the mean |output - start output| in "
            "pixel values (0-1), start being bilinear (talebi) or area (strided). Where it moved"
            " is what the comparison grids below show.",
            "",
            movement,
            "",
        ]
    if totals.published:
        lines += ["## Published", ""]
        lines += [
            f'- `{name}` in the local hub: `DownsizeNet.from_pretrained("{name}")`'
            for name in totals.published
        ]
        lines.append("")
    if figures:
        lines += ["## Figures", ""]
        for caption, name in figures:
            lines += [f"![{Path(name).stem}]({name})", "", f"*{caption}*", ""]
    return "\n".join(lines)


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


def write_text(path: Path, text: str) -> None:
    """Atomic text write (the report files are what a reader trusts)."""
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json(path: Path, document: dict[str, Any]) -> None:
    write_text(path, json.dumps(document, indent=2) + "\n")
