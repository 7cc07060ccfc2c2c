"""Datasets in one sample format: Pascal VOC, Cityscapes, COCO and the built-in ``scenes``.

Start with :func:`build_dataset` and :func:`dataset_info`; batch with :func:`collate`. The
conventions (tv_tensors, value ranges, box coordinates, ignore index) are in :mod:`.transforms`.
"""

from downsizenet_hub.data.files import CorruptFileError
from downsizenet_hub.data.registry import DATASETS, DatasetInfo, build_dataset, dataset_info
from downsizenet_hub.data.scenes import PRESETS as SCENES_PRESETS
from downsizenet_hub.data.scenes import SceneConfig, ensure_scenes
from downsizenet_hub.data.transforms import NOISE_SIGMA, collate

__all__ = [
    "DATASETS",
    "NOISE_SIGMA",
    "SCENES_PRESETS",
    "CorruptFileError",
    "DatasetInfo",
    "SceneConfig",
    "build_dataset",
    "collate",
    "dataset_info",
    "ensure_scenes",
]
