"""How ``pretrain`` builds its arms: each arm's name checked and configuration resolved once
(:func:`arm_configs`), its resizer constructed once in its own RNG stream (:func:`build_resizer`),
and the segmentation pipeline around it (:func:`build_pipeline`), which takes the resize target
checked by the data options as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from downsizenet_hub.experiments.common import seeded_build
from downsizenet_hub.experiments.pretrain_options import PretrainOptions
from downsizenet_hub.pipelines.segmentation import SegmentationPipeline
from downsizenet_hub.registry import create_resizer, is_plugin
from downsizenet_hub.resizing.strided import SCALE_TOLERANCE, StridedResizer
from downsizenet_hub.resizing.talebi import TalebiResizer

__all__ = [
    "BASELINES",
    "SCENES_BACKGROUND_WEIGHT",
    "arm_config",
    "arm_configs",
    "arm_names",
    "arm_recipe",
    "build_pipeline",
    "build_resizer",
]

#: The learned baselines: trained and published like a DownsizeNet, measured by their outputs.
BASELINES = (TalebiResizer, StridedResizer)

#: The built-in data has about 27 items per scene on a photographed background: down-weighting
#: the background class keeps the network from predicting background everywhere.
SCENES_BACKGROUND_WEIGHT = 0.2


def arm_names(options: PretrainOptions) -> list[str]:
    """The arms in training order: the resizer, then the --compare baseline if it differs."""
    return [options.resizer] + (
        [options.compare] if options.compare and options.compare != options.resizer else []
    )


def arm_configs(options: PretrainOptions) -> dict[str, dict[str, Any]]:
    """Each arm's name checked and its configuration resolved, once, before anything is built."""
    configs = {}
    for name in arm_names(options):
        _check_arm_name(name)
        configs[name] = arm_config(options, name)
    return configs


def build_resizer(options: PretrainOptions, name: str, config: dict[str, Any]) -> nn.Module:
    """The arm's resizer, drawn from its own RNG stream (``seed + 1``, see
    :func:`~.common.seeded_build`) so that arms differ only in it; the global RNG is left as it
    was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.train.seed + 1)
        return create_resizer(name, **config)


def arm_recipe(options: PretrainOptions, resizer: str, config: dict[str, Any]) -> dict[str, Any]:
    """What an arm's run is (its ``recipe``): a finished run with the same one is reused."""
    return {
        "task": "segmentation",
        "pipeline": f"deeplabv3plus-{options.backbone}",
        "width": options.width,
        "resizer": resizer,
        "resizer_config": config,
        "data": options.data.recipe(),
    }


def build_pipeline(
    options: PretrainOptions,
    resizer_ref: str,
    num_classes: int,
    *,
    resizer: nn.Module | None = None,
) -> nn.Module:
    """The segmentation pipeline for one arm, seeded so arms differ only in the resizer.

    ``resizer``: the arm's resizer from :func:`build_resizer` (default: built here).
    """
    weights = None
    if options.data.name == "scenes":
        weights = torch.ones(num_classes)
        weights[0] = SCENES_BACKGROUND_WEIGHT
    if resizer is None:
        resizer = build_resizer(options, resizer_ref, arm_config(options, resizer_ref))
    built = resizer
    return seeded_build(
        options.train.seed,
        lambda: built,
        lambda resizer: SegmentationPipeline(
            resizer,
            num_classes,
            target=options.data.target,
            backbone=options.backbone,
            width=options.width,
            class_weights=weights,
        ),
    )


def arm_config(options: PretrainOptions, name: str) -> dict[str, Any]:
    """The configuration the arm ``name`` is built with (see ``PretrainOptions.resizer_config``).

    Raises:
        ValueError: ``strided`` without a scale of 1/k (it has no geometry for other factors).
    """
    if name == "downsizenet":
        return options.resizer_config
    if name not in ("talebi", "strided"):  # a plugin's resizer under training takes its config
        return options.resizer_config if name == options.resizer and is_plugin(name) else {}
    config = options.resizer_config if name == options.resizer else {}
    if name == "talebi":
        return config
    option = "--resizer" if name == options.resizer else "--compare"
    scale = options.data.scale
    k = round(1 / scale) if scale else 0
    if scale is None or k < 2 or abs(scale - 1 / k) > SCALE_TOLERANCE:
        size = options.data.size
        given = f"--scale {scale:g}" if size is None else f"--size {size[0]}x{size[1]}"
        raise ValueError(
            f"{option} strided downsizes by 1/k only: give --scale 0.5, 0.25, ... (1/k for an "
            f"integer k >= 2), not {given}."
        )
    if config.get("k", k) != k:
        raise ValueError(
            f"a strided resizer with k={config['k']} cannot train at --scale {scale:g}; its "
            "scale is 1/k."
        )
    return {**config, "k": k}


def _check_arm_name(name: str) -> None:
    """Each arm trains in ``run_dir / name``: a name must not lead out of the run folder."""
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise ValueError(
            f"cannot train the resizer {name!r} here: its run folder would lie outside --run-dir "
            "(use a local-hub name, a fixed resizer, or a folder path without '..')."
        )
