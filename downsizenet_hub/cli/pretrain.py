"""``downsizenet pretrain``: train a resizer inside the segmentation pipeline, beside bilinear."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from downsizenet_hub.cli.common import (
    BatchOpt,
    DataOpt,
    DataRootOpt,
    DeviceOpt,
    EpochsOpt,
    FamilyOpt,
    ItemsOpt,
    LrOpt,
    PluginOpt,
    ProgressOpt,
    ResumeOpt,
    ScaleOpt,
    SeedOpt,
    SizeOpt,
    TrainImagesOpt,
    ValImagesOpt,
    VariantOpt,
    data_options_from,
    user_errors,
)
from downsizenet_hub.experiments import defaults

#: The learned baselines: --neighbourhood, --conv-layers and --texture-only do not apply to them.
BASELINES = ("talebi", "strided")
# \b keeps click from rewrapping the example (a paragraph of its own, as in transfer and study).
EXAMPLE = (
    "\b\n    Example:\n      downsizenet pretrain --scale 0.3 --compare bilinear \\\n"
    "        --publish demo/seg"
)


def pretrain(
    data: DataOpt = "scenes",
    data_root: DataRootOpt = None,
    variant: VariantOpt = "noisy",
    scale: ScaleOpt = None,
    size: SizeOpt = None,
    resizer: Annotated[
        str,
        typer.Option(
            "--resizer",
            help="downsizenet (learned); a learned baseline: talebi (Talebi-Milanfar) or strided "
            "(a k x k stride-k convolution, --scale 1/k only); a fixed resizer: bilinear, "
            "bicubic, area, antialias; or a plugin's resizer, by its name (see --plugin).",
        ),
    ] = "downsizenet",
    neighbourhood: Annotated[
        str, typer.Option(help="DownsizeNet taps: bilinear (2x2), bicubic (4x4) or antialias.")
    ] = "bilinear",
    conv_layers: Annotated[int, typer.Option(min=0, max=5, help="Texture conv layers (0-5).")] = 3,
    texture_only: Annotated[
        bool, typer.Option("--texture-only", help="Ablation: no relative-distance map.")
    ] = False,
    residual_blocks: Annotated[
        int, typer.Option(min=1, max=16, help="Residual blocks of --resizer talebi.")
    ] = 1,
    compare: Annotated[
        str | None,
        typer.Option(help="Baseline trained beside it under identical settings ('none' to skip)."),
    ] = "bilinear",
    backbone: Annotated[
        str, typer.Option(help="Segmentation backbone: tiny (CPU default) or resnet18/34/50/101.")
    ] = "tiny",
    epochs: EpochsOpt = defaults.PRETRAIN_EPOCHS,
    batch_size: BatchOpt = defaults.PRETRAIN_BATCH_SIZE,
    lr: LrOpt = defaults.PRETRAIN_LR,
    seed: SeedOpt = 0,
    train_images: TrainImagesOpt = None,
    val_images: ValImagesOpt = None,
    items: ItemsOpt = "large",
    family: FamilyOpt = "all",
    publish: Annotated[
        str | None,
        typer.Option(help="Publish the learned resizer to the local hub as namespace/name."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing published name.")] = False,
    push_to_hub: Annotated[
        str | None, typer.Option(help="Also upload it to the Hugging Face Hub as owner/name.")
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run-dir",
            metavar="DIR",
            help="Where checkpoints, logs and metrics go (default: runs/pretrain/<data>, e.g. "
            "runs/pretrain/scenes-noisy-large-x0.3).",
        ),
    ] = None,
    resume: ResumeOpt = False,
    device: DeviceOpt = "auto",
    progress: ProgressOpt = True,
    plugin: PluginOpt = None,
) -> None:
    """Train a resizer end to end inside a DeepLabv3+-style segmentation pipeline.

    Images are brought to the pipeline's input size (300 px on the built-in data) with bilinear,
    shrunk by the resizer under test, segmented, and the logits are upsampled to the input size
    to meet the full-resolution masks. With --compare, the baseline is trained with the same
    seed, data order and initialisation. Prints mIoU and pixel accuracy for both, writes
    metrics, logs and checkpoints under --run-dir (resumable), and with --publish stores the
    learned resizer with a model card in the local hub.
    """
    from downsizenet_hub.cli.data import run_label
    from downsizenet_hub.engine import TrainConfig, TrainingError
    from downsizenet_hub.engine.progress import run_prefix
    from downsizenet_hub.experiments.pretrain import PretrainOptions, run_pretrain
    from downsizenet_hub.resizing.limits import check_output_size

    with user_errors(TrainingError):
        data_options = data_options_from(
            data, data_root, variant, scale, size, train_images, val_images, items, family
        )
        check_output_size("--size", data_options.size, batch_size)
        config: dict[str, object] = {"neighbourhood": neighbourhood, "conv_layers": conv_layers}
        if texture_only:
            config["use_distance"] = False
        if resizer in BASELINES:  # its k comes from --scale
            config = {"residual_blocks": residual_blocks} if resizer == "talebi" else {}
        elif resizer != "downsizenet":  # a fixed or a plugin's resizer: its defaults
            config = {}
        options = PretrainOptions(
            data=data_options,
            resizer=resizer,
            resizer_config=config,
            compare=None if compare in (None, "none", "") else compare,
            backbone=backbone,
            train=TrainConfig(
                epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device
            ),
            run_dir=run_dir or Path("runs/pretrain") / run_label(data_options),
            resume=resume,
            publish=publish,
            force=force,
            push_to_hub=push_to_hub,
            progress=progress,
        )
        with run_prefix(f"pretrain {run_label(data_options)}"):
            report = run_pretrain(options)
    if report.published:
        typer.echo(f"published {report.published} to the local hub")
    if report.pushed:
        typer.echo(f"uploaded to https://huggingface.co/{report.pushed}")
    typer.echo(f"summary: {report.summary_path}")


pretrain.__doc__ = f"{pretrain.__doc__}\n\n    {EXAMPLE}"
