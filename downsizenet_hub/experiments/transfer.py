"""Transfer a published resizer, frozen, to detection in front of a frozen VGG16 (paper, 5.3).

Each arm (the published resizer, and the baseline resizers beside it) trains only the detection
heads, for the same fixed epoch budget, from the same initialisation and data order. Resizer and
trunk are frozen, so their output is computed once per image and reused every epoch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from downsizenet_hub.backbones import frozen_vgg16
from downsizenet_hub.data import dataset_info
from downsizenet_hub.engine import TrainConfig
from downsizenet_hub.experiments import defaults
from downsizenet_hub.experiments.common import (
    ArmResult,
    DataOptions,
    arms_payload,
    print_table,
    seeded_build,
    summary_table,
    train_arm,
    write_summary,
)
from downsizenet_hub.pipelines.detection import HEADS, DetectionPipeline, stride8_trunk
from downsizenet_hub.registry import ResizerRef, create_resizer, resolve_resizer
from downsizenet_hub.tensor_hash import module_sha256


@dataclass
class TransferOptions:
    """Everything ``downsizenet transfer`` takes; see ``downsizenet transfer --help``."""

    data: DataOptions = field(default_factory=DataOptions)
    # A published resizer (local hub name, folder, HF repo id) or a fixed one.
    resizer: str = "bilinear"
    compare: str | None = "bilinear"
    backbone_weights: str = "auto"
    # Detection heads: "centernet" (dense, the CPU default) or "fasterrcnn" (RPN + RoI heads).
    head: str = defaults.TRANSFER_HEAD
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=defaults.TRANSFER_EPOCHS,
            batch_size=defaults.TRANSFER_BATCH_SIZE,
            lr=defaults.TRANSFER_LR,
        )
    )
    run_dir: Path = Path("runs/transfer")
    resume: bool = False
    cache_features: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.head not in HEADS:  # before any data is built
            raise ValueError(f"--head must be one of {', '.join(HEADS)}, got {self.head!r}.")


@dataclass
class TransferReport:
    arms: list[ArmResult]
    backbone: str
    summary_path: Path


def run_transfer(options: TransferOptions) -> TransferReport:
    """Train the detection heads behind each frozen resizer; print and save the comparison."""
    info = dataset_info(options.data.name)
    # Each arm's resizer is resolved and loaded once, here: a bad name or a resizer without
    # geometry for this resize fails now, not after the first arm has trained.
    refs = {name: resolve_resizer(name) for name in arm_names(options)}
    resizers = {name: create_resizer(ref) for name, ref in refs.items()}
    for name, resizer in resizers.items():
        _check_geometry(name, resizer, options, info.image_size)
    train_set, val_set = options.data.datasets("detection")
    trunk = stride8_trunk(frozen_vgg16(options.backbone_weights))
    trunk_hash = module_sha256(trunk)
    arms: list[ArmResult] = []
    for name, resizer in resizers.items():
        pipeline = build_pipeline(options, resizer, trunk, info.num_classes)
        recipe = _recipe(options, name, resizer, trunk, trunk_hash)
        arm, _ = train_arm(
            name, pipeline, train_set, val_set, options.train,
            options.run_dir / _arm_folder(refs[name], list(refs)),
            recipe, resume=options.resume, progress=options.progress,
        )  # fmt: skip
        cache = pipeline.cached_front
        if cache is not None:
            arm.extra["feature_cache"] = {"hits": cache.hits, "misses": cache.misses}
        # Frozen means frozen: resizer and trunk must be bit-identical after the heads trained.
        arm.extra["frozen_unchanged"] = (
            module_sha256(resizer) == recipe["resizer_sha256"]
            and module_sha256(trunk) == trunk_hash
        )
        arms.append(arm)
    print_table(
        summary_table(
            f"Detection transfer ({options.data.name}, {options.data.describe_resize()}, "
            f"{options.train.epochs} {options.head} epochs, seed {options.train.seed}, backbone "
            f"{trunk.source})",
            arms,
            ["map_50", "map"],
        )
    )
    summary_path = options.run_dir / "summary.json"
    write_summary(
        summary_path,
        {"task": "detection-transfer", "backbone": trunk.provenance, "arms": arms_payload(arms),
         "options": asdict(options)},
    )  # fmt: skip
    return TransferReport(arms, trunk.provenance, summary_path)


def arm_names(options: TransferOptions) -> list[str]:
    """The arms in training order: the resizer, then the --compare baseline if it differs."""
    return [options.resizer] + (
        [options.compare] if options.compare and options.compare != options.resizer else []
    )


def _recipe(
    options: TransferOptions, name: str, resizer: nn.Module, trunk: Any, trunk_hash: str
) -> dict[str, Any]:
    """What an arm's run is (its ``recipe``): a finished run with the same one is reused."""
    return {
        "task": "detection-transfer",
        "resizer": name,
        "resizer_sha256": module_sha256(resizer),
        "backbone": trunk.provenance,
        "backbone_sha256": trunk_hash,
        "head": options.head,
        "data": options.data.recipe(),
    }


def build_pipeline(
    options: TransferOptions, resizer: nn.Module, trunk: nn.Module, num_classes: int
) -> DetectionPipeline:
    """The detection pipeline for one arm: heads seeded identically in every arm."""
    resizer.requires_grad_(False)
    return seeded_build(
        options.train.seed,
        lambda: resizer,
        lambda r: DetectionPipeline(
            r, trunk, num_classes, target=options.data.target, head=options.head,
            cache_features=options.cache_features,
        ),
    )  # fmt: skip


def _check_geometry(
    name: str, resizer: nn.Module, options: TransferOptions, default_size: tuple[int, int]
) -> None:
    """Refuse, before anything is built, a resizer that has no geometry for this resize (a
    strided resizer resizes by 1/k only: it says so through its ``check_request``)."""
    check = getattr(resizer, "check_request", None)
    if check is None:
        return
    height, width = options.data.image_size or default_size
    try:
        check(height, width, **options.data.resize_kwargs())
    except ValueError as error:
        option = "--resizer" if name == options.resizer else "--compare"
        raise ValueError(f"{option} {name} cannot resize these images: {error}") from None


def _slug(name: str) -> str:
    return name.replace("/", "__").replace("@", "_at_")


def _arm_folder(ref: ResizerRef, arm_names: list[str]) -> str:
    """An arm's run folder: named after the resizer, so a resizer given as a folder path trains
    in ``<its folder's name>``, not in the whole path mangled (unless two arms would share it)."""
    published = ref.published
    if published is not None and published.source == "directory":
        folder = published.folder
        if folder.name not in ("", ".", ".."):
            others = {_slug(other) for other in arm_names if other != ref.text}
            if folder.resolve().name not in others:
                return folder.resolve().name
    return _slug(ref.text)
