"""Publishing a study's trained resizers to the local hub, with what the study measured.

A resizer is published once the study has run, so that its training record carries the
differences the study measured over its seeds (:func:`measured_differences`: paired by seed, in
segmentation and after frozen transfer to detection, from bilinear, area and the classical filter
a DownsizeNet starts as); the card shows them.

A study replaces a published name only if the resizer there was published by the same study
command (its training record's ``command``); anything else under that name is left alone with a
one-line error saying how to free the name. Publishing identical weights and record again is a
no-op, so a second run of a study changes nothing in the hub.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

from downsizenet_hub import hub
from downsizenet_hub.experiments.measure import baseline_outputs
from downsizenet_hub.experiments.record import scenes_variant
from downsizenet_hub.hub.local import local_path
from downsizenet_hub.hub.record import MeasuredDifference, OutputStatistics, TrainingRecord
from downsizenet_hub.resizing.config import DownsizeNetConfig
from downsizenet_hub.resizing.strided import StridedResizer
from downsizenet_hub.resizing.talebi import TalebiResizer
from downsizenet_hub.study.aggregate import estimate, paired_difference
from downsizenet_hub.study.cell import FAMILY_NAMES
from downsizenet_hub.study.cell_run import CellResult, data_options
from downsizenet_hub.study.cells import (
    METRIC_NAMES,
    PRIMARY_METRIC,
    TASK_NAMES,
    Cell,
    StudyPlan,
)
from downsizenet_hub.study.config import BASELINE, ResizerSpec
from downsizenet_hub.tensor_hash import module_sha256

#: The classical resizers every published resizer's card is compared with, when the study has them.
COMPARED_WITH = (BASELINE, "area")


def compared_with(resizer: ResizerSpec) -> tuple[str, ...]:
    """:data:`COMPARED_WITH`, then the fixed resizer a DownsizeNet starts as when that is another
    (its neighbourhood's classical filter, e.g. ``antialias``): whether training moved it past its
    own start is the question its card must answer."""
    if not resizer.is_downsizenet:
        return COMPARED_WITH
    # Each neighbourhood's classical filter is the fixed resizer of the same name.
    start = DownsizeNetConfig(**resizer.config).neighbourhood
    return COMPARED_WITH if start in COMPARED_WITH else (*COMPARED_WITH, start)


def trained_alike(cell: Cell, like: Cell) -> bool:
    """Whether ``cell`` ran the same task with the same settings as ``like`` (any resizer, seed)."""
    setting = (cell.task, cell.variant, cell.scale, cell.epochs, cell.data, cell.settings)
    return setting == (like.task, like.variant, like.scale, like.epochs, like.data, like.settings)


def scores_by_seed(
    plan: StudyPlan, results: Mapping[str, CellResult], match: Callable[[Cell], bool]
) -> dict[int, float]:
    """Per seed, the primary score of the finished cells that ``match``."""
    return {
        c.seed: results[c.key].metrics[PRIMARY_METRIC[c.task]]
        for c in plan.cells
        if c.key in results and match(c)
    }


def segmentation_scores(
    plan: StudyPlan, results: Mapping[str, CellResult], like: Cell, label: str
) -> dict[int, float]:
    """Per seed, the finished mIoU of the ``label`` segmentation cells trained like ``like``."""
    return scores_by_seed(
        plan, results, lambda c: c.resizer.label == label and trained_alike(c, like)
    )


def measured_differences(
    plan: StudyPlan, results: Mapping[str, CellResult], trained: Cell
) -> tuple[MeasuredDifference, ...]:
    """What the study measured for the resizer the segmentation cell ``trained`` trains: its
    score minus each :func:`compared_with` resizer's, paired by seed, in segmentation (same
    scale, variant, epochs and data) and after frozen transfer to detection (its transfers
    against the fixed resizers' at the same scale on the same scenes), once per scenes its
    transfers detect on (the plateau study's family A and family B). Comparisons the study
    lacks are left out."""
    label = trained.resizer.label

    def transferred(cell: Cell) -> bool:
        source = cell.source
        return (
            source is not None and source.resizer.label == label and trained_alike(source, trained)
        )

    def transfer_scores(resizer: str, scenes: tuple[str, str]) -> dict[int, float]:
        # One transfer setting per scenes: the fixed resizers' transfers there compare.
        def match(c: Cell) -> bool:
            if c.task != "transfer" or c.scenes != scenes:
                return False
            if resizer == label:
                return transferred(c)
            return c.source is None and c.resizer.label == resizer and c.scale == trained.scale

        return scores_by_seed(plan, results, match)

    found = _differences(
        trained,
        "segmentation",
        TASK_NAMES["segmentation"],
        lambda resizer: segmentation_scores(plan, results, trained, resizer),
    )
    targets = sorted({c.scenes for c in plan.cells if c.task == "transfer" and transferred(c)})
    for scenes in targets:
        found += _differences(
            trained,
            "transfer",
            _transfer_task(trained, scenes),
            lambda resizer, scenes=scenes: transfer_scores(resizer, scenes),  # type: ignore[misc]
        )
    return tuple(found)


def _transfer_task(trained: Cell, scenes: tuple[str, str]) -> str:
    """How a card names the detection its resizer was frozen into: ``detection (frozen
    transfer)``, or with the scene family, ``detection on family B (new objects; frozen
    transfer)``."""
    family, variant = scenes
    if scenes == ("all", trained.variant):
        return TASK_NAMES["transfer"]
    where = FAMILY_NAMES.get(family, f"family {family}")
    if variant != trained.variant:
        where += f", {variant}"
    new = "new objects; " if family != trained.scenes[0] else ""
    return f"detection on {where} ({new}frozen transfer)"


def _differences(
    trained: Cell, task: str, task_name: str, scores: Callable[[str], dict[int, float]]
) -> list[MeasuredDifference]:
    """The :func:`compared_with` differences in ``task``: ``scores(resizer)`` per seed, the
    trained resizer's minus each compared one's."""
    found = []
    ours = scores(trained.resizer.label)
    for baseline in compared_with(trained.resizer):
        difference = paired_difference(ours, scores(baseline))
        if difference is None:
            continue
        found.append(
            MeasuredDifference(
                task=task_name,
                metric=METRIC_NAMES[PRIMARY_METRIC[task]],
                baseline=baseline,
                difference=difference.mean,
                ci_low=difference.ci_low,
                ci_high=difference.ci_high,
                n_seeds=difference.n,
            )
        )
    return found


def measured_outputs(trained: Cell, folder: Path) -> OutputStatistics | None:
    """A learned baseline's output statistics on ``trained``'s validation scenes, for a card
    whose record lacks them (cells record none); None for a DownsizeNet, whose output is an
    image by construction, or when the record has them."""
    model, record = hub.load(folder)
    if not isinstance(model, (TalebiResizer, StridedResizer)):
        return None
    if record is not None and record.outputs is not None:
        return None
    options = data_options(trained.data, trained.variant, trained.scale)
    return baseline_outputs(model, options.build("val", "segmentation"), options.resize_kwargs())


def study_record(
    record: TrainingRecord,
    plan: StudyPlan,
    results: Mapping[str, CellResult],
    trained: Cell,
    command: str,
    outputs: OutputStatistics | None = None,
) -> TrainingRecord:
    """``record`` (written when ``trained`` finished: its own seed's scores) with what the study
    measured over every seed: the mean and spread of its segmentation score and bilinear's
    (the weights stay those of ``trained``'s seed) and :func:`measured_differences`; its command
    is the study's ``command``, which reproduces it (a cell's key covers every setting that
    decides its result, whichever study file trained it); ``outputs`` where the record has
    none (:func:`measured_outputs`)."""
    if outputs is not None and record.outputs is None:
        record = dataclasses.replace(record, outputs=outputs)
    ours = segmentation_scores(plan, results, trained, trained.resizer.label)
    bilinear = segmentation_scores(plan, results, trained, BASELINE)
    differences = measured_differences(plan, results, trained)
    # The scene family too, for records written before the cards named it.
    variant = scenes_variant(trained.variant, trained.scenes[0])
    if len(ours) < 2 or len(bilinear) != len(ours):
        return dataclasses.replace(
            record, command=command, differences=differences, data_variant=variant
        )
    mine = estimate([ours[seed] for seed in sorted(ours)])
    reference = estimate([bilinear[seed] for seed in sorted(bilinear)])
    return dataclasses.replace(
        record,
        command=command,
        score=mine.mean, score_std=mine.std, baseline=BASELINE, baseline_score=reference.mean,
        baseline_std=reference.std, n_seeds=mine.n, differences=differences,
        data_variant=variant,
    )  # fmt: skip


def publish_study_resizer(
    folder: Path,
    name: str,
    command: str,
    update: Callable[[TrainingRecord], TrainingRecord] | None = None,
) -> bool:
    """Publish the resizer saved in ``folder`` as ``name``, its record passed through ``update``
    (e.g. :func:`study_record`); return False if already there as is.

    Raises:
        FileExistsError: ``name`` holds a resizer that ``command`` did not publish.
    """
    model, record = hub.load(folder)
    if record is not None and update is not None:
        record = update(record)
    target = local_path(name)
    if target.exists():
        try:
            existing, existing_record = hub.load(target)
        except (OSError, TypeError, ValueError):
            existing, existing_record = None, None
        if existing is None or existing_record is None or existing_record.command != command:
            raise FileExistsError(
                f"{name} is already in the local hub and was not published by `{command}`; "
                f"remove it with `downsizenet hub remove {name}` or publish under another name."
            )
        if existing_record == record and module_sha256(existing) == module_sha256(model):
            return False
    hub.publish(model, name, record=record, force=target.exists())
    return True
