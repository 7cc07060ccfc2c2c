"""A study as cells and rows: what runs (cells) and what the tables show (rows).

A *cell* is one training run for one seed: a segmentation pretraining (``downsizenet pretrain``
with one resizer) or a transfer (``downsizenet transfer``: a frozen resizer in front of the frozen
VGG16 detector; the resizer is fixed, or the one a segmentation cell trained). Its *key* is a
readable prefix plus a hash of its settings (:meth:`Cell.spec`), so a finished cell can be found
again and a changed setting never reuses a stale one; the code that computed it is named by the
numerics version stored beside it (:mod:`.numerics`), not by the key. Cells shared by several
experiments (e.g. the bilinear baseline at one scale) run once.

A setting added to any part of a spec after cells were computed (a data, training or resizer
option) is declared with ``metadata=KEYED_WHEN_SET``: it enters the spec only when it differs
from its default, so every cell that uses the default keeps its key and its result.

A *row* is one line of a results table: the cells of one resizer over the seeds, beside the
bilinear cells of the same seeds it is compared with (paired by seed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from functools import cached_property
from typing import Any, Literal

from downsizenet_hub.engine import TrainConfig
from downsizenet_hub.resizing.config import DownsizeNetConfig
from downsizenet_hub.study.config import (
    ARCHITECTURES,
    BASELINE,
    DataSettings,
    PretrainSettings,
    ResizerSpec,
    SegmentationExperiment,
    StudyConfig,
    TransferExperiment,
    TransferSettings,
    learned_config,  # and plugin_entry: plugin resizers
    plugin_entry,
)

#: The layout of a cell's spec and result (not the numerics: see :mod:`.numerics`).
CELL_FORMAT = "downsizenet-study-cell/1"
#: Field metadata of a setting added after cells were computed: in a cell's spec only when set.
#: The resizing core spells it out (``{"cell_key": "when-set"}``) as it imports nothing of ours.
KEYED_WHEN_SET: dict[str, str] = {"cell_key": "when-set"}
Task = Literal["segmentation", "transfer"]
#: The score each task's tables lead with, and the others reported beside it.
PRIMARY_METRIC: dict[str, str] = {"segmentation": "miou", "transfer": "map_50"}
METRICS: dict[str, tuple[str, ...]] = {
    "segmentation": ("miou", "pixel_accuracy"),
    "transfer": ("map_50", "map"),
}
#: How each task is named where a reader sees it (cards, cost tables).
TASK_NAMES = {"segmentation": "segmentation", "transfer": "detection (frozen transfer)"}
METRIC_NAMES = {
    "miou": "mIoU",
    "pixel_accuracy": "pixel accuracy",
    "map_50": "mAP@0.5",
    "map": "mAP@[.5:.95]",
}


def count_epochs(count: int, unit: str = "epoch") -> str:
    """``"1 epoch"``, ``"3 epochs"``."""
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


@dataclass(frozen=True)
class Cell:
    """One run for one seed. ``epochs``: pretraining epochs (segmentation) or the head budget
    (transfer); ``source``: the segmentation cell whose trained resizer a transfer loads."""

    task: Task
    resizer: ResizerSpec
    variant: str
    scale: float
    epochs: int
    seed: int
    data: DataSettings
    settings: PretrainSettings | TransferSettings
    source: Cell | None = None

    def train_config(self, device: str = "auto") -> TrainConfig:
        """The engine settings of this cell's run; evaluated once, after the last epoch (the
        tables report final scores only)."""
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.settings.batch_size,
            lr=self.settings.lr,
            seed=self.seed,
            device=device,
            eval_every=self.epochs,
        )

    def spec(self) -> dict[str, Any]:
        """Everything that decides the result, as JSON-able data (stored in the cell's JSON).

        Engine and DownsizeNet defaults are spelled out, so that a changed default makes new
        cells instead of reusing results computed under the old one.
        """
        settings = {k: v for k, v in keyed(self.settings).items() if k != "data"}
        settings.pop("epochs", None)  # the cell's own epochs count, not the default
        train_config = self.train_config()
        train = keyed(train_config, train_config.to_dict())
        for neutral in ("device", "log_every"):  # where it runs and how often it logs
            train.pop(neutral)
        resizer = None
        if self.resizer.is_downsizenet:
            downsizenet = DownsizeNetConfig(**self.resizer.config)
            resizer = keyed(downsizenet, downsizenet.to_dict())
        elif self.resizer.learned:
            config = learned_config(self.resizer.architecture, self.resizer.config)
            built_in = ARCHITECTURES.get(self.resizer.architecture)
            if built_in is not None:  # a field added later enters only when set
                config = keyed(built_in(**self.resizer.config), config)
            resizer = {"architecture": self.resizer.architecture, **config}
        return json.loads(
            json.dumps(
                {
                    "format": CELL_FORMAT,
                    "task": self.task,
                    "resizer": self.resizer.label,
                    "resizer_config": resizer,
                    "variant": self.variant,
                    "scale": self.scale,
                    "epochs": self.epochs,
                    "seed": self.seed,
                    "data": keyed(self.data),
                    "settings": settings,
                    "train": train,
                    "source": self.source.key if self.source is not None else None,
                    **plugin_entry(self.resizer),  # {} unless a plugin's resizer: keys unchanged
                },
                sort_keys=True,
            )
        )

    @cached_property
    def key(self) -> str:
        """Stable and readable, e.g. ``seg-noisy-x0.3-downsizenet-e3-s0-1a2b3c4d``."""
        digest = hashlib.sha256(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()
        task = "seg" if self.task == "segmentation" else "det"
        pretrained = f"-pre{self.source.epochs}" if self.source is not None else ""
        label = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.resizer.label)
        return (
            f"{task}-{self.variant}{self.family_tag}-x{self.scale:g}-{label}{pretrained}"
            f"-e{self.epochs}-s{self.seed}-{digest[:8]}"
        )

    @property
    def family_tag(self) -> str:
        """``-famA`` for scenes of one family, ``""`` for all of them (keys made before)."""
        family = getattr(self.data, "family", "all")
        return "" if family == "all" else f"-fam{family}"

    def describe(self) -> str:
        """One line for progress output: task, resizer, variant, scale, epochs."""
        scenes = f"{self.variant}{self.family_tag.replace('-fam', ' family ')}"
        if self.task == "segmentation":
            return (
                f"segmentation  {self.resizer.label} {scenes} x{self.scale:g}, "
                f"{count_epochs(self.epochs)}"
            )
        origin = (
            f"{self.resizer.label} pretrained {count_epochs(self.source.epochs)}"
            if self.source is not None
            else self.resizer.label
        )
        heads = count_epochs(self.epochs, "head epoch")
        return f"transfer  {origin} {scenes} x{self.scale:g}, {heads}"


def keyed(settings: Any, as_dict: dict[str, Any] | None = None) -> dict[str, Any]:
    """``settings`` (a dataclass) as its part of a cell spec: ``as_dict`` (default
    ``asdict(settings)``) without the fields marked :data:`KEYED_WHEN_SET` that hold their
    default, nested settings likewise."""
    data = dict(asdict(settings) if as_dict is None else as_dict)
    for item in fields(settings):
        value = getattr(settings, item.name)
        if item.metadata.get("cell_key") == KEYED_WHEN_SET["cell_key"]:
            factory = item.default_factory
            default = item.default if factory is MISSING else factory()
            if value == default:
                data.pop(item.name, None)
                continue
        if (
            is_dataclass(value)
            and not isinstance(value, type)
            and isinstance(data.get(item.name), dict)
        ):
            data[item.name] = keyed(value, data[item.name])
    return data


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
    scale, learned, seeds = experiment.scale, experiment.resizer, config.seeds
    baseline = ResizerSpec(BASELINE)

    pretrain_data = experiment.pretrain_data
    # The transfer's own data: its variant (when it names one) is the transfer cells' variant.
    target = experiment.transfer_data or transfer.data
    target_variant = target.variant
    target = dataclasses.replace(target, variant=None)

    def segmentation(resizer: ResizerSpec, variant: str, epochs: int) -> list[Cell]:
        return [
            cells.add(_segmentation_cell(config, resizer, variant, scale, epochs, s, pretrain_data))
            for s in seeds
        ]

    def transfers(resizer: ResizerSpec, variant: str, sources: list[Cell | None]) -> list[Cell]:
        epochs, variant = transfer.epochs, target_variant or variant
        return [
            cells.add(
                Cell("transfer", resizer, variant, scale, epochs, s, target, transfer, source)
            )
            for s, source in zip(seeds, sources, strict=True)
        ]

    rows: list[Row] = []
    for variant in _variants(config, experiment):
        # The resizer at each pretraining length, then the learned baselines (talebi, strided,
        # other DownsizeNets) pretrained as long as the longest; each beside bilinear as long.
        longest = max(experiment.pretrain_epochs)
        to_pretrain = [(learned, epochs) for epochs in experiment.pretrain_epochs] + [
            (resizer, longest) for resizer in experiment.baselines if resizer.learned
        ]
        pretrained = []
        for resizer, epochs in to_pretrain:
            reference = segmentation(baseline, variant, epochs)  # planned first: runs first
            trained = segmentation(resizer, variant, epochs)
            pretrained.append(
                Row(
                    experiment.title, "transfer", variant, scale, resizer,
                    cells={"segmentation": trained,
                           "transfer": transfers(resizer, variant, list(trained))},
                    baseline={"segmentation": reference},
                    pretrain_epochs=epochs,
                )
            )  # fmt: skip
        fixed = []
        fixed_names = (b for b in experiment.baselines if not b.learned)
        for resizer in dict.fromkeys((baseline, *fixed_names)):
            fixed.append(
                Row(
                    experiment.title, "transfer", variant, scale, resizer,
                    cells={"transfer": transfers(resizer, variant, [None] * len(seeds))},
                )
            )  # fmt: skip
        for row in pretrained + fixed:
            row.baseline["transfer"] = fixed[0].cells["transfer"]  # bilinear, listed first
        rows += pretrained + fixed
    return rows
