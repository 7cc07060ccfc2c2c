"""Datasets by name: what each one is (:func:`dataset_info`) and one way to build it
(:func:`build_dataset`), so pipelines and commands never branch on the dataset.

Every dataset built here yields the sample format of :mod:`.transforms`: ``(image, target)`` with a
float ``tv_tensors.Image`` in [0, 1] and ``mask`` and/or ``boxes``/``labels``/``iscrowd``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from downsizenet_hub import paths
from downsizenet_hub.data import scenes
from downsizenet_hub.data.cityscapes import CITYSCAPES_CLASSES, CityscapesDataset
from downsizenet_hub.data.coco import COCO_CLASSES, CocoDataset
from downsizenet_hub.data.decoded import DecodedScenes
from downsizenet_hub.data.transforms import (
    NOISE_SIGMA,
    VARIANTS,
    PixelNoise,
    Sample,
    SampleDataset,
    SizeArg,
    as_size,
    build_transforms,
)
from downsizenet_hub.data.voc import VOC_CLASSES, VOCDataset

TASKS = ("segmentation", "detection")
SPLITS = ("train", "val")


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, independent of where it lives on disk."""

    name: str
    # Number of classes including background (index 0). Cityscapes has no background: its 19
    # classes are the train ids 0..18.
    num_classes: int
    class_names: tuple[str, ...]
    tasks: tuple[str, ...]
    # The pipeline input size (H, W) experiments use by default (pass it as ``image_size``).
    image_size: tuple[int, int]
    # True when the data is generated locally (scenes) rather than brought by the user.
    generated: bool
    # Whom to cite and the licence terms, one line, for outputs and model cards.
    citation: str
    # Mask value that losses and metrics must ignore.
    ignore_index: int = 255


_INFOS = {
    "scenes": DatasetInfo(
        name="scenes",
        num_classes=len(scenes.SCENES_CLASSES),
        class_names=scenes.SCENES_CLASSES,
        tasks=TASKS,
        image_size=(300, 300),
        generated=True,
        citation=scenes.CITATION,
    ),
    "voc": DatasetInfo(
        name="voc",
        num_classes=len(VOC_CLASSES),
        class_names=VOC_CLASSES,
        tasks=TASKS,
        image_size=(300, 300),
        generated=False,
        citation=(
            "Everingham et al., The PASCAL Visual Object Classes (VOC) Challenge, IJCV 2010; "
            "images under Flickr terms of use, annotations for research use."
        ),
    ),
    "cityscapes": DatasetInfo(
        name="cityscapes",
        num_classes=len(CITYSCAPES_CLASSES),
        class_names=CITYSCAPES_CLASSES,
        tasks=("segmentation",),
        image_size=(512, 1024),
        generated=False,
        citation=(
            "Cordts et al., The Cityscapes Dataset for Semantic Urban Scene Understanding, CVPR "
            "2016; licence: non-commercial research and teaching only."
        ),
    ),
    "coco": DatasetInfo(
        name="coco",
        num_classes=len(COCO_CLASSES) + 1,
        class_names=("background", *COCO_CLASSES),
        tasks=("detection",),
        image_size=(300, 300),
        generated=False,
        citation=(
            "Lin et al., Microsoft COCO: Common Objects in Context, ECCV 2014; annotations CC BY "
            "4.0, images under Flickr terms of use."
        ),
    ),
}
DATASETS = tuple(_INFOS)


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name`` (one of :data:`DATASETS`)."""
    if name not in _INFOS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {', '.join(DATASETS)}.")
    return _INFOS[name]


def _scenes_raw(root: str | Path | None, split: str, options: dict[str, Any]) -> tuple[Any, int]:
    """The scenes of ``split`` (built or reused when ``root`` is None) and the build's seed."""
    if root is None:
        preset = options.pop("preset", "default")
        if preset not in scenes.PRESETS:
            raise ValueError(
                f"Unknown scenes preset {preset!r}; expected one of {list(scenes.PRESETS)}."
            )
        train, preset_val = scenes.PRESETS[preset]
        val: int | None = preset_val
        if "images" in options:  # an explicit count: val follows it unless given too
            train, val = options.pop("images"), None
        root = scenes.ensure_scenes(
            train,
            options.pop("seed", 0),
            options.pop("size", 300),
            val_images=options.pop("val_images", val),
            config=options.pop("config", None),
        )
    manifest = scenes.read_manifest(root)
    raw = VOCDataset(
        root,
        split,
        year="2012",
        segmentation=True,
        detection=True,
        class_names=manifest["class_names"],
    )
    try:
        decoded: Any = DecodedScenes(raw, Path(root), split)
    except OSError:  # a read-only or full folder: read the files one by one instead
        decoded = raw
    return decoded, int(manifest["seed"])


def build_dataset(
    name: str,
    split: str,
    *,
    task: str,
    root: str | Path | None = None,
    image_size: SizeArg | None = None,
    train_augment: bool = False,
    variant: str = "clean",
    **kwargs: Any,
) -> Dataset[Sample]:
    """A dataset of ``(image, target)`` samples ready for a pipeline.

    Args:
        name: one of :data:`DATASETS`.
        split: ``"train"`` or ``"val"``.
        task: ``"segmentation"`` (targets hold ``mask``) or ``"detection"`` (``boxes``, ``labels``,
            ``iscrowd``); scenes targets always hold all four.
        root: where the data lives (VOC: the folder holding ``VOCdevkit``; Cityscapes: the
            folder holding ``leftImg8bit`` and ``gtFine``; COCO: the folder holding
            ``annotations``; scenes: a built scenes folder). None: scenes are built or reused
            under ``paths.data_dir()``; the other datasets are looked for in
            ``paths.data_dir()/<name>``.
        image_size: pipeline input size, an int (square) or (H, W); reached with ``antialias=False``
            bilinear (masks nearest, boxes scaled). None keeps each image's stored size.
        train_augment: random horizontal flip and random resized crop (see :mod:`.transforms`).
        variant: ``"clean"``, or ``"noisy"``: Gaussian pixel noise (``noise_sigma``, default 0.15)
            added at the stored resolution, fixed per image (seed ``noise_seed``, default the
            scenes seed, else 0).
        **kwargs: per dataset. voc: ``year`` (default 2012 for segmentation, 2007 for detection),
            ``image_set`` (default ``split``; e.g. ``"test"`` for VOC 2007). coco: ``year``,
            ``annotation_file``, ``images_dir``. scenes with ``root=None``: ``preset``
            (``"default"`` or ``"study"``), ``images``, ``val_images``, ``seed``, ``size``,
            ``config`` (a :class:`.scenes.SceneConfig`).

    Example::

        >>> train = build_dataset("scenes", "train", task="segmentation", image_size=300)
        >>> image, target = train[0]   # Image (3, 300, 300) float32, Mask (300, 300) int64
    """
    info = dataset_info(name)
    if task not in info.tasks:
        raise ValueError(f"Dataset {name!r} supports task {' or '.join(info.tasks)}, not {task!r}.")
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'val', got {split!r}.")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}.")
    as_size(image_size)  # validate early, before any data is read or built
    options = dict(kwargs)
    noise_sigma = float(options.pop("noise_sigma", NOISE_SIGMA))
    noise_seed = options.pop("noise_seed", None)
    if noise_sigma < 0:
        raise ValueError(f"noise_sigma must be non-negative, got {noise_sigma}.")
    default_seed = 0
    raw: Any
    if name == "scenes":
        raw, default_seed = _scenes_raw(root, split, options)
    else:
        data_root = Path(root) if root is not None else paths.data_dir() / name
        if name == "voc":
            raw = VOCDataset(
                data_root,
                options.pop("image_set", split),
                year=str(options.pop("year", "2012" if task == "segmentation" else "2007")),
                segmentation=task == "segmentation",
                detection=task == "detection",
            )
        elif name == "cityscapes":
            raw = CityscapesDataset(data_root, split)
        else:
            coco_options = _take(options, ("year", "annotation_file", "images_dir"))
            raw = CocoDataset(data_root, split, **coco_options)
    if options:
        raise TypeError(
            f"build_dataset({name!r}) got unexpected options: {', '.join(sorted(options))}."
        )
    noise = None
    if variant == "noisy":
        seed = default_seed if noise_seed is None else int(noise_seed)
        noise = PixelNoise(sigma=noise_sigma, seed=seed, stream=SPLITS.index(split))
    has_boxes = task == "detection" or name == "scenes"
    transforms = build_transforms(image_size, train_augment=train_augment, boxes=has_boxes)
    return SampleDataset(raw, transforms, noise)


def _take(options: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: options.pop(key) for key in keys if key in options}
