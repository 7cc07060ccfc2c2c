"""A study's tables: one per experiment (rich for the terminal, markdown for results.md, the same
columns), and the head-to-head table; every score as mean ± std [95% CI]."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from downsizenet_hub.study.aggregate import format_estimate
from downsizenet_hub.study.cells import METRIC_NAMES, PRIMARY_METRIC, count_epochs
from downsizenet_hub.study.summaries import HeadToHead, RowSummary

__all__ = ["head_to_head_table", "markdown_tables", "rich_tables"]


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
