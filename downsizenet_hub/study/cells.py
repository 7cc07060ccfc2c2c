"""A study as cells and rows: what runs (cells, :mod:`.cell`) and what the tables show (rows).

Cells shared by several experiments (e.g. the bilinear baseline at one scale) run once. A *row* is
one line of a results table: the cells of one resizer over the seeds, beside the bilinear cells of
the same seeds it is compared with (paired by seed). The names of :mod:`.cell` are importable from
here as well.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from downsizenet_hub.study.cell import (
    CELL_FORMAT,
    KEYED_WHEN_SET,
    METRIC_NAMES,
    METRICS,
    PRIMARY_METRIC,
    TASK_NAMES,
    Cell,
    Task,
    count_epochs,
    keyed,
)
from downsizenet_hub.study.config import (
    BASELINE,
    DataSettings,
    ResizerSpec,
    SegmentationExperiment,
    StudyConfig,
    TransferExperiment,
    TransferSettings,
)

__all__ = [
    "CELL_FORMAT",
    "KEYED_WHEN_SET",
    "METRICS",
    "METRIC_NAMES",
    "PRIMARY_METRIC",
    "TASK_NAMES",
    "Cell",
    "Row",
    "StudyPlan",
    "Task",
    "count_epochs",
    "keyed",
    "plan_study",
]


@dataclass
class Row:
    """One table line: ``cells[task]`` over the seeds beside ``baseline[task]`` (bilinear).

    ``pretrain_epochs`` is set on the rows of a transfer experiment's pretrained resizer.
    """

    experiment: str
    kind: str
    variant: str
    scale: float
    resizer: ResizerSpec
    cells: dict[str, list[Cell]] = field(default_factory=dict)
    baseline: dict[str, list[Cell]] = field(default_factory=dict)
    pretrain_epochs: int | None = None

    @property
    def is_baseline(self) -> bool:
        return not self.resizer.learned and self.resizer.label == BASELINE


@dataclass
class StudyPlan:
    """The cells in run order (each transfer after the cell it loads) and the table rows."""

    config: StudyConfig
    cells: list[Cell]
    rows: list[Row]
    # (segmentation cell, local hub name): resizers the study publishes.
    publications: list[tuple[Cell, str]]

    def cell_count(self, task: Task) -> int:
        return sum(1 for c in self.cells if c.task == task)


class _Cells:
    """Deduplicates cells by key, keeping the first-planned order."""

    def __init__(self) -> None:
        self.by_key: dict[str, Cell] = {}

    def add(self, cell: Cell) -> Cell:
        return self.by_key.setdefault(cell.key, cell)


def plan_study(config: StudyConfig, *, backbone_weights: str | None = None) -> StudyPlan:
    """Expand ``config`` into rows and the cells they need, each cell once.

    ``backbone_weights`` replaces the transfer setting's (e.g. ``"auto"`` resolved to the source
    actually used), so that the cell keys say which VGG16 weights the transfers ran on.
    """
    transfer = config.transfer
    if backbone_weights is not None:
        transfer = dataclasses.replace(transfer, backbone_weights=backbone_weights)
    cells = _Cells()
    rows: list[Row] = []
    publications: list[tuple[Cell, str]] = []
    for experiment in config.experiments:
        if isinstance(experiment, SegmentationExperiment):
            rows += _segmentation_rows(config, experiment, cells)
            continue
        experiment_rows = _transfer_rows(config, transfer, experiment, cells)
        rows += experiment_rows
        longest = max(experiment.pretrain_epochs)
        for label, name in experiment.publish:
            row = next(
                r
                for r in experiment_rows
                if r.resizer.label == label and r.pretrain_epochs == longest
            )
            publications.append((row.cells["segmentation"][0], name))
    # Seed-major (a study stopped early has every experiment for its first seeds); within a
    # seed, in planning order, which puts each transfer after the cell that trains its resizer.
    planned = {key: index for index, key in enumerate(cells.by_key)}
    seed_order = {seed: index for index, seed in enumerate(config.seeds)}
    run_order = sorted(cells.by_key.values(), key=lambda c: (seed_order[c.seed], planned[c.key]))
    return StudyPlan(config, run_order, rows, publications)


def _variants(
    config: StudyConfig, experiment: SegmentationExperiment | TransferExperiment
) -> tuple[str, ...]:
    return experiment.variants or config.variants


def _segmentation_cell(
    config: StudyConfig,
    resizer: ResizerSpec,
    variant: str,
    scale: float,
    epochs: int,
    seed: int,
    data: DataSettings | None = None,
) -> Cell:
    return Cell(
        "segmentation", resizer, variant, scale, epochs, seed,
        data or config.pretrain.data, config.pretrain,
    )  # fmt: skip


def _segmentation_rows(
    config: StudyConfig, experiment: SegmentationExperiment, cells: _Cells
) -> list[Row]:
    """Per variant and scale: bilinear first (the reference), then the experiment's resizers."""
    epochs = experiment.epochs or config.pretrain.epochs
    baseline = ResizerSpec(BASELINE)

    def over_seeds(resizer: ResizerSpec, variant: str, scale: float) -> list[Cell]:
        return [
            cells.add(
                _segmentation_cell(config, resizer, variant, scale, epochs, s, experiment.data)
            )
            for s in config.seeds
        ]

    rows = []
    for variant in _variants(config, experiment):
        for scale in experiment.scales:
            reference = over_seeds(baseline, variant, scale)
            for resizer in [baseline, *(r for r in experiment.resizers if r != baseline)]:
                rows.append(
                    Row(
                        experiment.title, "segmentation", variant, scale, resizer,
                        cells={"segmentation": over_seeds(resizer, variant, scale)},
                        baseline={"segmentation": reference},
                    )
                )  # fmt: skip
    return rows


def _transfer_rows(
    config: StudyConfig, transfer: TransferSettings, experiment: TransferExperiment, cells: _Cells
) -> list[Row]:
    """Per variant: a row per pretraining length (the resizer pretrained beside bilinear, then
    transferred), then a row per fixed resizer transferred as it is; bilinear's is the reference."""
    planner = _TransferCells(config, transfer, experiment, cells)
    rows: list[Row] = []
    for variant in _variants(config, experiment):
        pretrained = _pretrained_rows(planner, variant)
        fixed = _fixed_rows(planner, variant)
        for row in pretrained + fixed:
            row.baseline["transfer"] = fixed[0].cells["transfer"]  # bilinear, listed first
        rows += pretrained + fixed
    return rows


@dataclass
class _TransferCells:
    """The cells of one transfer experiment: its resizers pretrained on its pretraining data,
    and transferred to its own data (whose variant, when it names one, is the transfer cells')."""

    config: StudyConfig
    transfer: TransferSettings
    experiment: TransferExperiment
    cells: _Cells
    target: DataSettings = field(init=False)
    target_variant: str | None = field(init=False)

    def __post_init__(self) -> None:
        target = self.experiment.transfer_data or self.transfer.data
        self.target_variant = target.variant
        self.target = dataclasses.replace(target, variant=None)

    def segmentation(self, resizer: ResizerSpec, variant: str, epochs: int) -> list[Cell]:
        scale, data = self.experiment.scale, self.experiment.pretrain_data
        return [
            self.cells.add(
                _segmentation_cell(self.config, resizer, variant, scale, epochs, s, data)
            )
            for s in self.config.seeds
        ]

    def transfers(
        self, resizer: ResizerSpec, variant: str, sources: list[Cell] | None = None
    ) -> list[Cell]:
        """The transfer cells of ``resizer`` over the seeds: of the resizers pretrained in
        ``sources`` (one per seed), or of a fixed one."""
        seeds, scale, target = self.config.seeds, self.experiment.scale, self.target
        settings, epochs = self.transfer, self.transfer.epochs
        variant = self.target_variant or variant
        loads: list[Cell | None] = list(sources) if sources else [None] * len(seeds)
        return [
            self.cells.add(
                Cell("transfer", resizer, variant, scale, epochs, s, target, settings, source)
            )
            for s, source in zip(seeds, loads, strict=True)
        ]


def _pretrained_rows(planner: _TransferCells, variant: str) -> list[Row]:
    """The resizer at each pretraining length, then the learned baselines (talebi, strided,
    other DownsizeNets) pretrained as long as the longest; each beside bilinear as long."""
    experiment = planner.experiment
    longest = max(experiment.pretrain_epochs)
    to_pretrain = [(experiment.resizer, epochs) for epochs in experiment.pretrain_epochs] + [
        (resizer, longest) for resizer in experiment.baselines if resizer.learned
    ]
    rows = []
    for resizer, epochs in to_pretrain:
        baseline = ResizerSpec(BASELINE)
        reference = planner.segmentation(baseline, variant, epochs)  # planned first: runs first
        trained = planner.segmentation(resizer, variant, epochs)
        rows.append(
            Row(
                experiment.title, "transfer", variant, experiment.scale, resizer,
                cells={"segmentation": trained,
                       "transfer": planner.transfers(resizer, variant, trained)},
                baseline={"segmentation": reference},
                pretrain_epochs=epochs,
            )
        )  # fmt: skip
    return rows


def _fixed_rows(planner: _TransferCells, variant: str) -> list[Row]:
    """Bilinear (first: the reference), then each fixed resizer, transferred as it is."""
    experiment = planner.experiment
    fixed_names = (b for b in experiment.baselines if not b.learned)
    return [
        Row(
            experiment.title, "transfer", variant, experiment.scale, resizer,
            cells={"transfer": planner.transfers(resizer, variant)},
        )
        for resizer in dict.fromkeys((ResizerSpec(BASELINE), *fixed_names))
    ]  # fmt: skip
