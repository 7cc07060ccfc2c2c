"""The statistics of a study: per row, the estimates over seeds and the difference to bilinear
paired by seed; between two compared resizers, the head-to-head paired differences.

Scores are percent. Every row gives the mean over seeds with the sample standard deviation and
the 95% t-interval of the mean, and the difference to bilinear paired by seed with its own
interval (see :mod:`.aggregate`). :mod:`.findings` reads them as sentences, :mod:`.tables` and
:mod:`.report` write them out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from downsizenet_hub.study.aggregate import Estimate, estimate, paired_difference
from downsizenet_hub.study.cell_run import CellResult
from downsizenet_hub.study.cells import METRICS, PRIMARY_METRIC, Cell, Row, StudyPlan, count_epochs
from downsizenet_hub.study.config import TransferExperiment

__all__ = ["HeadToHead", "RowSummary", "by_seed", "head_to_head", "summarise"]


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


def by_seed(cells: Sequence[Cell], results: Mapping[str, CellResult], metric: str) -> dict:
    """Each seed's value of ``metric`` among ``cells``, for the cells that have finished."""
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
                values = by_seed(cells, results, metric)
                if values:
                    summary.scores[task][metric] = estimate([values[s] for s in sorted(values)])
            values = by_seed(cells, results, primary)
            summary.seeds[task] = sorted(values)
            reference = by_seed(row.baseline.get(task, []), results, primary)
            if reference:
                summary.baseline[task] = estimate([reference[s] for s in sorted(reference)])
            summary.difference[task] = (
                None if row.is_baseline else paired_difference(values, reference)
            )
        summaries.append(summary)
    return summaries


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
                ours, theirs = (by_seed(r.cells[task], results, metric) for r in (a, b))
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
