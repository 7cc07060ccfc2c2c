"""``downsizenet transfer``: a published resizer, frozen, in front of a frozen VGG16 detector."""

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


def transfer(
    resizer: Annotated[
        str,
        typer.Option(
            "--resizer",
            help="A published resizer (local hub name, folder or hf-hub:owner/name; a plugin's "
            "loads with its plugin, see --plugin) or bilinear, bicubic, area, antialias.",
        ),
    ],
    data: DataOpt = "scenes",
    data_root: DataRootOpt = None,
    variant: VariantOpt = "noisy",
    scale: ScaleOpt = None,
    size: SizeOpt = None,
    compare: Annotated[
        str | None, typer.Option(help="Baseline resizer trained beside it ('none' to skip).")
    ] = "bilinear",
    backbone_weights: Annotated[
        str,
        typer.Option(
            help="Frozen VGG16 weights: auto (imagenet if cached, else hed), imagenet, hed, or "
            "a state-dict file (.safetensors, or .pth read with weights_only=True)."
        ),
    ] = "auto",
    head: Annotated[
        str,
        typer.Option(
            "--head",
            help="Detection heads: centernet (dense, learns in CPU minutes) or fasterrcnn "
            "(RPN + RoI heads, for GPU budgets).",
        ),
    ] = defaults.TRANSFER_HEAD,
    epochs: EpochsOpt = defaults.TRANSFER_EPOCHS,
    batch_size: BatchOpt = defaults.TRANSFER_BATCH_SIZE,
    lr: LrOpt = defaults.TRANSFER_LR,
    seed: SeedOpt = 0,
    train_images: TrainImagesOpt = None,
    val_images: ValImagesOpt = None,
    items: ItemsOpt = "large",
    family: FamilyOpt = "all",
    cache_features: Annotated[
        bool,
        typer.Option(help="Compute the frozen resizer + trunk once per image and reuse it."),
    ] = True,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run-dir",
            metavar="DIR",
            help="Where checkpoints, logs and metrics go (default: runs/transfer/<data>, e.g. "
            "runs/transfer/scenes-noisy-large-x0.3).",
        ),
    ] = None,
    resume: ResumeOpt = False,
    device: DeviceOpt = "auto",
    progress: ProgressOpt = True,
    plugin: PluginOpt = None,
) -> None:
    """Train only the detection heads behind a frozen resizer and a frozen VGG16 trunk.

    The paper's cross-task study (its section 5.3 and Table 3): the resizer pretrained on
    segmentation is loaded frozen in front of a frozen VGG16 (cut after conv4_3, stride 8), and
    detection heads (a CenterNet-style dense head by default, or torchvision's Faster R-CNN
    heads) train for a fixed epoch budget on features computed once per image, beside the
    --compare baseline under identical settings. Prints mAP@0.5 and COCO mAP for each.

    \b
    Example:
      downsizenet transfer --resizer demo/seg --compare bilinear
    """
    from downsizenet_hub.cli.data import run_label
    from downsizenet_hub.engine import TrainConfig, TrainingError
    from downsizenet_hub.engine.progress import run_prefix
    from downsizenet_hub.experiments.transfer import TransferOptions, run_transfer
    from downsizenet_hub.resizing.limits import check_output_size

    with user_errors(TrainingError):
        data_options = data_options_from(
            data, data_root, variant, scale, size, train_images, val_images, items, family
        )
        options = TransferOptions(
            data=data_options,
            head=head,
            resizer=resizer,
            compare=None if compare in (None, "none", "") else compare,
            backbone_weights=backbone_weights,
            train=TrainConfig(
                epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device
            ),
            run_dir=run_dir or Path("runs/transfer") / run_label(data_options),
            resume=resume,
            cache_features=cache_features,
            progress=progress,
        )
        check_output_size("--size", options.data.size, batch_size)  # before any data is built
        with run_prefix(f"transfer {run_label(data_options)}"):
            report = run_transfer(options)
    unchanged = all(arm.extra.get("frozen_unchanged", False) for arm in report.arms)
    typer.echo(f"frozen resizer and VGG16 tensors unchanged after training: {unchanged}")
    typer.echo(f"summary: {report.summary_path}")
