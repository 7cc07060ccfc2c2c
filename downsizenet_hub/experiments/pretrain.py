"""Pretrain a resizer end to end inside the segmentation pipeline, beside a classical baseline.

Both arms share the seed, the data order and the task network's initialisation; only the
resizer differs. The learned resizer (a DownsizeNet, or one of the learned baselines ``talebi`` and
``strided``) can then be published (weights, config, model card) to the local hub and, on
request, the Hugging Face Hub.

How far training moved a learned resizer is measured on validation images: for a DownsizeNet, the
share of each pixel's weight its coefficients moved (:func:`weight_moved`); for a baseline, whose
output is not a convex mix, the mean ``|output - start output|`` against the classical resizer it
starts as (bilinear for talebi, area for strided), recorded with its output statistics
(:func:`baseline_outputs`), which its card shows.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from downsizenet_hub import hub
from downsizenet_hub.data import dataset_info
from downsizenet_hub.engine import TrainConfig, is_main_process
from downsizenet_hub.engine.checkpoint import load_checkpoint
from downsizenet_hub.experiments import defaults
from downsizenet_hub.experiments.common import (
    ArmResult,
    DataOptions,
    arms_payload,
    checkpoint_path,
    print_table,
    seeded_build,
    summary_table,
    train_arm,
    write_summary,
)
from downsizenet_hub.experiments.output_stats import mean_abs_difference, output_statistics
from downsizenet_hub.hub import store
from downsizenet_hub.hub.local import local_path
from downsizenet_hub.hub.record import OutputStatistics
from downsizenet_hub.pipelines.segmentation import SegmentationPipeline
from downsizenet_hub.registry import check_publishable, create_resizer, is_plugin, list_resizers
from downsizenet_hub.resizing.downsizenet import DownsizeNet
from downsizenet_hub.resizing.strided import SCALE_TOLERANCE, StridedResizer
from downsizenet_hub.resizing.talebi import TalebiResizer

#: The learned baselines: trained and published like a DownsizeNet, measured by their outputs.
BASELINES = (TalebiResizer, StridedResizer)

#: The built-in data has about 27 items per scene on a photographed background: down-weighting
#: the background class keeps the network from predicting background everywhere.
SCENES_BACKGROUND_WEIGHT = 0.2


@dataclass
class PretrainOptions:
    """Everything ``downsizenet pretrain`` takes; see ``downsizenet pretrain --help``."""

    data: DataOptions = field(default_factory=DataOptions)
    # The resizer under training: "downsizenet" or a learned baseline ("talebi", "strided"), or
    # a fixed one.
    resizer: str = "downsizenet"
    # Config overrides for the learned resizer: DownsizeNetConfig fields for downsizenet (also
    # when it is the --compare arm), TalebiConfig or StridedConfig fields for a baseline. The
    # strided resizer's k comes from the scale (1/k) unless given.
    resizer_config: dict[str, Any] = field(default_factory=dict)
    # The baseline trained beside it under identical settings (None: no comparison).
    compare: str | None = "bilinear"
    backbone: str = "tiny"
    width: int = 32
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=defaults.PRETRAIN_EPOCHS,
            batch_size=defaults.PRETRAIN_BATCH_SIZE,
            lr=defaults.PRETRAIN_LR,
        )
    )
    run_dir: Path = Path("runs/pretrain")
    resume: bool = False
    publish: str | None = None
    force: bool = False
    push_to_hub: str | None = None
    progress: bool = True


@dataclass
class PretrainReport:
    arms: list[ArmResult]
    published: str | None
    pushed: str | None
    summary_path: Path
    # The trained learned resizer (None when --resizer is a fixed one), on the CPU, eval mode.
    resizer: nn.Module | None = None


def _recipe(options: PretrainOptions, resizer: str) -> dict[str, Any]:
    return {
        "task": "segmentation",
        "pipeline": f"deeplabv3plus-{options.backbone}",
        "width": options.width,
        "resizer": resizer,
        "resizer_config": arm_config(options, resizer),
        "data": options.data.recipe(),
    }


def build_pipeline(options: PretrainOptions, resizer_ref: str, num_classes: int) -> nn.Module:
    """The segmentation pipeline for one arm, seeded so arms differ only in the resizer."""
    weights = None
    if options.data.name == "scenes":
        weights = torch.ones(num_classes)
        weights[0] = SCENES_BACKGROUND_WEIGHT
    config = arm_config(options, resizer_ref)
    resize = options.data.resize_kwargs()
    return seeded_build(
        options.train.seed,
        lambda: create_resizer(resizer_ref, **config),
        lambda resizer: SegmentationPipeline(
            resizer,
            num_classes,
            size=resize.get("size"),
            scale_factor=resize.get("scale_factor"),
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


def run_pretrain(options: PretrainOptions) -> PretrainReport:
    """Train the resizer (and the baseline), print the comparison, publish if asked."""
    learned = list_resizers(fixed=False)
    if options.publish is not None and options.resizer not in learned:
        raise ValueError(
            f"--publish needs a learned --resizer ({', '.join(learned)}): fixed resizers have no "
            "weights."
        )
    if options.publish is not None:
        hub.validate_name(options.publish)  # "" is refused, not ignored
        check_publishable(options.resizer)
        if not options.force and store.occupied(local_path(options.publish)):  # before training
            raise FileExistsError(
                f"{options.publish} is already in the local hub; use --force to replace it, or "
                "publish under another name."
            )
    if options.push_to_hub is not None:
        if options.publish is None:  # it uploads the published resizer: alone it would be lost
            raise ValueError("--push-to-hub needs --publish NAME: it uploads what is published.")
        hub.validate_name(options.push_to_hub.removeprefix("hf-hub:"))
    arm_names = [options.resizer] + (
        [options.compare] if options.compare and options.compare != options.resizer else []
    )
    for name in arm_names:  # a bad name fails now, not after the first arm has trained
        _check_arm_name(name)
        create_resizer(name, **arm_config(options, name))
    info = dataset_info(options.data.name)
    train_set, val_set = options.data.datasets("segmentation")
    arms: list[ArmResult] = []
    trained: dict[str, nn.Module] = {}
    for name in arm_names:
        pipeline = build_pipeline(options, name, info.num_classes)
        arm, result = train_arm(
            name, pipeline, train_set, val_set, options.train, options.run_dir / name,
            _recipe(options, name), resume=options.resume, progress=options.progress,
        )  # fmt: skip
        net = pipeline.resizer
        if _has_weights(net) and result is None:
            _load_final_weights(pipeline, options.run_dir / name)  # a reused run's weights
        if isinstance(net, DownsizeNet):
            arm.extra["weight_moved"] = weight_moved(net, val_set, options.data.resize_kwargs())
        elif isinstance(net, BASELINES):
            measured = baseline_outputs(net, val_set, options.data.resize_kwargs())
            arm.extra["outputs"] = asdict(measured)
        arms.append(arm)
        trained[name] = pipeline
    print_table(
        summary_table(
            f"Segmentation ({options.data.name}, {options.data.variant}, "
            f"{options.data.describe_resize()}, {options.train.epochs} epochs, seed "
            f"{options.train.seed})",
            arms,
            ["miou", "pixel_accuracy"],
        )
    )
    for arm in arms:
        if "weight_moved" in arm.extra and is_main_process():
            print(
                f"{arm.name} moved {100 * arm.extra['weight_moved']:.2f}% of each output pixel's "
                "weight away from its classical filter (mean over validation pixels)"
            )
        if "outputs" in arm.extra and is_main_process():
            print(describe_outputs(arm.name, OutputStatistics(**arm.extra["outputs"])))
    published = pushed = None
    if options.publish is not None and is_main_process():
        net = trained[options.resizer].resizer
        assert isinstance(net, nn.Module)
        outputs = arms[0].extra.get("outputs")
        record = training_record(
            options,
            arms[0].metrics["miou"],
            baseline=arms[1].name if len(arms) > 1 else "none",
            baseline_score=arms[1].metrics.get("miou") if len(arms) > 1 else None,
            outputs=None if outputs is None else OutputStatistics(**outputs),
        )
        publish_resizer(net, record, name=options.publish, force=options.force)
        published = options.publish
        if options.push_to_hub:
            hub.push_published(options.publish, options.push_to_hub)
            pushed = options.push_to_hub
    summary_path = options.run_dir / "summary.json"
    write_summary(
        summary_path,
        {"task": "segmentation", "arms": arms_payload(arms), "published": published,
         "options": asdict(options)},
    )  # fmt: skip
    learned_resizer = trained[options.resizer].resizer
    resizer = (
        learned_resizer.cpu().eval()
        if isinstance(learned_resizer, nn.Module) and _has_weights(learned_resizer)
        else None
    )
    return PretrainReport(arms, published, pushed, summary_path, resizer)


#: Validation images on which :func:`weight_moved` is measured.
MOVED_IMAGES = 16


@torch.no_grad()
def weight_moved(net: DownsizeNet, images: Any, resize: dict[str, Any]) -> float:
    """How far a trained DownsizeNet moved from its classical start, on validation images.

    The mean over output pixels of ``0.5 * sum_k |a_k - c_k|``: the share of each pixel's weight
    the learned coefficients ``a`` moved away from the classical filter ``c`` of the same
    neighbourhood (0: still classical; 1: all of it), on the first :data:`MOVED_IMAGES` images.
    """
    classical = DownsizeNet(neighbourhood=net.config.neighbourhood, conv_layers=0)
    batch = _validation_images(images, 0, min(MOVED_IMAGES, len(images)))
    was_training = net.training
    net.eval()
    try:
        learned = net.coefficient_maps(batch.to(_device_of(net)), **resize).cpu()
    finally:
        net.train(was_training)
    reference = classical.coefficient_maps(batch, **resize)
    return float(0.5 * (learned - reference).abs().sum(dim=(-2, -1)).mean())


def _validation_images(images: Any, first: int, stop: int) -> torch.Tensor:
    """Images ``first`` to ``stop - 1`` of a dataset of ``(image, target)`` items, one batch."""
    return torch.stack([images[i][0].as_subclass(torch.Tensor) for i in range(first, stop)])


def baseline_outputs(
    net: TalebiResizer | StridedResizer, images: Any, resize: dict[str, Any]
) -> OutputStatistics:
    """The output statistics of a trained learned baseline on every validation image, and the
    mean ``|output - start output|`` on the first :data:`MOVED_IMAGES`, where ``start`` is the
    classical resizer the architecture starts as (``type(net).starts_as``)."""
    device = _device_of(net)
    count = len(images)
    batches = (
        _validation_images(images, first, min(first + MOVED_IMAGES, count)).to(device)
        for first in range(0, count, MOVED_IMAGES)
    )
    statistics = output_statistics(net, batches, **resize)
    moved_images = min(MOVED_IMAGES, count)
    start = create_resizer(type(net).starts_as)
    moved = mean_abs_difference(net, start, _validation_images(images, 0, moved_images), **resize)
    return OutputStatistics.from_dict(
        {**statistics, "images": count, "start": type(net).starts_as, "moved_from_start": moved,
         "moved_images": moved_images}
    )  # fmt: skip


def describe_outputs(name: str, outputs: OutputStatistics) -> str:
    """One line for the console: how far a baseline moved and where its outputs lie."""
    return (
        f"{name} moved {outputs.moved_from_start:.4f} from {outputs.start} (mean |output - "
        f"{outputs.start} output| over {outputs.moved_images} validation images); its outputs "
        f"span [{outputs.min:.3f}, {outputs.max:.3f}], {100 * outputs.outside_unit_range:.2f}% "
        f"outside [0, 1], {100 * outputs.outside_input_range:.2f}% outside their image's range"
    )


def _has_weights(module: object) -> bool:
    """A learned resizer (built in or a plugin's), not a fixed one."""
    return isinstance(module, nn.Module) and next(module.parameters(), None) is not None


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters(), torch.empty(0)).device


def _load_final_weights(pipeline: nn.Module, run_dir: Path) -> None:
    """The trained weights of a finished run's checkpoint; a corrupt or foreign checkpoint is
    a ValueError naming it (frozen parts, which checkpoints leave out, stay as they are)."""
    path = checkpoint_path(run_dir)
    state = load_checkpoint(path)  # ValueError for a truncated, empty or malformed file
    frozen = {name for name, weight in pipeline.named_parameters() if not weight.requires_grad}
    try:
        missing, unexpected = pipeline.load_state_dict(state.model, strict=False)
    except RuntimeError as error:  # wrong shapes
        wrong = str(error).strip().splitlines()
        raise ValueError(
            f"{path} does not fit this pipeline ({wrong[-1].strip() if wrong else error}); train "
            "in another --run-dir."
        ) from None
    if unexpected or set(missing) - frozen:
        names = sorted(set(missing) - frozen) + sorted(unexpected)
        raise ValueError(
            f"{path} does not fit this pipeline (missing or unexpected: {', '.join(names[:5])}); "
            "train in another --run-dir."
        )


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
        data_variant=data.variant,
        input_size=(input_size[0], input_size[1]),
        output_size=(data.size[0], data.size[1]) if data.size else None,
        scale_factor=data.scale,
        outputs=outputs,
    )


def publish_resizer(
    net: nn.Module,
    record: hub.TrainingRecord,
    *,
    name: str | None = None,
    folder: Path | None = None,
    force: bool = False,
) -> None:
    """Publish a trained resizer with its record, one way for ``pretrain --publish`` and the
    study: to the local hub as ``name`` (replacing it only with ``force``), or into ``folder`` in
    the hub layout, written beside it and renamed into place so that a folder that exists is
    always complete."""
    if (name is None) == (folder is None):
        raise ValueError("publish_resizer needs exactly one of name= or folder=.")
    if name is not None:
        hub.publish(net, name, record=record, force=force)
        return
    assert folder is not None
    staging = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    hub.save_pretrained(net, staging, record=record, name=str(folder))
    os.replace(staging, folder)
