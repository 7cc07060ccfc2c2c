"""The scene families a study's resizers meet, and each family's validation scenes.

A study whose transfer experiments give their pretraining or their transfer scenes of one family
(``pretrain_data`` / ``transfer_data`` naming ``family``, e.g. the ``plateau`` preset: pretrained
on family A, frozen into detection on A and on B) measures its learned resizers on each of those
families (movement, outputs, item maps): a resizer pretrained on one family is there shown on the
objects it learned and on the new ones. A study without families has none of these columns.

A family's scenes are those the learned cell was validated on (its data settings: sizes, scenes
seed, layout) with the family's objects and backgrounds, and the transfer's own variant where it
names one, so that the pretraining family's column measures the very images the cell did.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from downsizenet_hub.study.cell import FAMILY_NAMES
from downsizenet_hub.study.cell_run import data_options
from downsizenet_hub.study.config import DataSettings, StudyConfig, TransferExperiment


@dataclass(frozen=True)
class Family:
    """A scene family a study's resizers are frozen into: its name in ``SCENE_FAMILIES`` and the
    transfer's own variant (None: the variant of the cell that trained the resizer)."""

    name: str
    variant: str | None = None

    @property
    def label(self) -> str:
        """As a column heading: ``family B``, or ``family B (clean)`` for a variant of its own."""
        named = FAMILY_NAMES.get(self.name, f"family {self.name}")
        return named if self.variant is None else f"{named} ({self.variant})"


def study_families(config: StudyConfig) -> tuple[Family, ...]:
    """The pretraining's family, then every family a transfer detects on, each once; ``()`` when
    no transfer experiment names a scene family (its report keeps the columns it always had)."""
    found: list[Family] = []
    for experiment in config.experiments:
        if not isinstance(experiment, TransferExperiment):
            continue
        if experiment.pretrain_data is None and experiment.transfer_data is None:
            continue
        pretrain = experiment.pretrain_data or config.pretrain.data
        target = experiment.transfer_data or config.transfer.data
        found += [Family(pretrain.family), Family(target.family, target.variant)]
    families = tuple(dict.fromkeys(found))
    return families if any(f.name != "all" for f in families) else ()


def pretraining_data(config: StudyConfig) -> DataSettings:
    """The data the transfer experiments' resizers were pretrained on (the first that names its
    own, else the study's segmentation data)."""
    for experiment in config.experiments:
        if isinstance(experiment, TransferExperiment) and experiment.pretrain_data is not None:
            return experiment.pretrain_data
    return config.pretrain.data


def family_scenes(
    data: DataSettings, variant: str, scale: float, family: Family
) -> tuple[Any, dict[str, Any]]:
    """The segmentation validation split of ``data`` with ``family``'s objects and backgrounds
    (and its variant, where it names one), and the resize arguments of ``scale``.

    Built here directly, not through ``DataOptions.datasets``, whose torchrun barriers only rank
    0 would reach while writing the report.
    """
    options = data_options(
        dataclasses.replace(data, family=family.name), family.variant or variant, scale
    )
    return options.build("val", "segmentation"), options.resize_kwargs()


def first_images(images: Any, count: int) -> torch.Tensor:
    """The first ``count`` images (at most all) of a dataset of ``(image, target)`` items, as one
    ``(B, C, H, W)`` float batch."""
    stop = min(count, len(images))
    return torch.stack([images[i][0].as_subclass(torch.Tensor).float() for i in range(stop)])
