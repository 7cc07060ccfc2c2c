"""What a resizer pretrained by ``pretrain`` (or a study cell) records about itself: its
:class:`~downsizenet_hub.hub.TrainingRecord`, published with it and shown on its card."""

from __future__ import annotations

import shlex
import sys

from downsizenet_hub import hub
from downsizenet_hub.data import dataset_info
from downsizenet_hub.data.composition import DEFAULT_FAMILY, describe_family
from downsizenet_hub.experiments.pretrain_options import PretrainOptions
from downsizenet_hub.hub.record import OutputStatistics

__all__ = ["scenes_variant", "training_record"]


def scenes_variant(variant: str | None, family: str) -> str | None:
    """A record's ``data_variant``: the variant, and the scene family where one is chosen (its
    objects and photographs, so a card says what the resizer was trained on)."""
    if family == DEFAULT_FAMILY:
        return variant
    return f"{variant}, {describe_family(family)}" if variant else describe_family(family)


def training_record(
    options: PretrainOptions,
    score: float,
    *,
    baseline: str = "none",
    baseline_score: float | None = None,
    command: str | None = None,
    outputs: OutputStatistics | None = None,
) -> hub.TrainingRecord:
    """What a resizer pretrained with ``options`` publishes about itself: its mIoU ``score``, the
    ``baseline`` and its score, the ``command`` that reproduces it (default: this process's
    command line) and, for a learned baseline, its ``outputs``. The study records its cells
    through this function too."""
    data = options.data
    info = dataset_info(data.name)
    input_size = data.image_size or info.image_size
    if command is None:
        command = shlex.join(["downsizenet", *sys.argv[1:]]) if sys.argv else "run_pretrain()"
    return hub.TrainingRecord(
        task="segmentation",
        pipeline=f"deeplabv3plus-{options.backbone} (torchvision ASPP)",
        dataset=data.name,
        generated_data=info.generated,
        epochs=options.train.epochs,
        seed=options.train.seed,
        metric="mIoU",
        score=float(score),
        baseline_score=baseline_score,
        baseline=baseline,
        command=command,
        data_variant=scenes_variant(data.variant, data.family),
        input_size=(input_size[0], input_size[1]),
        output_size=(data.size[0], data.size[1]) if data.size else None,
        scale_factor=data.scale,
        outputs=outputs,
    )
