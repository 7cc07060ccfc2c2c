"""Bounds on a study file: what it may ask for before anything is planned, built or allocated.

A study file is user input: its seeds, cells and sizes are bounded here, so that a typo (a
million seeds, a 100000 px image) is one clear error rather than a planning loop that never
ends or an allocation of terabytes.
"""

from __future__ import annotations

from downsizenet_hub.resizing.limits import check_memory
from downsizenet_hub.study.config import SegmentationExperiment, StudyConfig

#: Bounds that keep planning and checking a study file fast: seeds, and cells in all.
MAX_SEEDS = 1000
MAX_CELLS = 100_000
#: Bytes a study file may be (its text is parsed whole).
MAX_FILE_BYTES = 8 * 2**20


def check_study_size(config: StudyConfig, where: str) -> None:
    """Refuse a study that would plan too many cells, or whose cells need more memory than this
    machine allows for one training batch (checked before anything is built or allocated)."""
    seeds, cells = len(config.seeds), 0
    for experiment in config.experiments:
        variants = len(experiment.variants or config.variants)
        if isinstance(experiment, SegmentationExperiment):
            cells += variants * len(experiment.scales) * (len(experiment.resizers) + 1) * seeds
        else:
            rows = len(experiment.pretrain_epochs) + len(experiment.baselines)
            cells += variants * 3 * rows * seeds  # at most: bilinear, the resizer, its transfer
    if cells > MAX_CELLS:
        raise ValueError(f"{where} would plan about {cells} cells; at most {MAX_CELLS}.")
    for task, settings, channels in (
        ("pretrain", config.pretrain, 3 + config.pretrain.width),
        ("transfer", config.transfer, 3 + 64),  # VGG16's first block, at the input size at most
    ):
        datas = [settings.data]
        for experiment in config.experiments:
            if isinstance(experiment, SegmentationExperiment):
                own = experiment.data if task == "pretrain" else None
            else:
                own = experiment.pretrain_data if task == "pretrain" else experiment.transfer_data
            if own is not None:
                datas.append(own)
        for data in datas:
            height, width = data.image_size or (300, 300)
            # One batch's images and first feature maps, their gradients beside them, float32.
            estimate = 2 * 4 * settings.batch_size * channels * height * width
            check_memory(
                f"{where}: {task} at batch {settings.batch_size} of {height}x{width} images",
                estimate,
            )
