"""Pretrain a resizer end to end inside the segmentation pipeline, beside a classical baseline.

Both arms share the seed, the data order and the task network's initialisation; only the
resizer differs. The learned resizer (a DownsizeNet, or one of the learned baselines ``talebi`` and
``strided``) can then be published (weights, config, model card) to the local hub and, on
request, the Hugging Face Hub.

The jobs live in their own modules, and their names are importable from here as well: the
options (:mod:`.pretrain_options`), building an arm (:mod:`.pretrain_build`), measuring how far a
learned resizer moved (:mod:`.measure`), its training record (:mod:`.record`) and publishing it
(:mod:`.publish`). This module runs them: :func:`run_pretrain`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import nn

from downsizenet_hub import hub
from downsizenet_hub.data import dataset_info
from downsizenet_hub.engine import is_main_process
from downsizenet_hub.engine.checkpoint import load_checkpoint
from downsizenet_hub.experiments.common import (
    ArmResult,
    arms_payload,
    checkpoint_path,
    print_table,
    summary_table,
    train_arm,
    write_summary,
)
from downsizenet_hub.experiments.measure import (
    MOVED_IMAGES,
    baseline_outputs,
    describe_outputs,
    weight_moved,
)
from downsizenet_hub.experiments.pretrain_build import (
    BASELINES,
    SCENES_BACKGROUND_WEIGHT,
    arm_config,
    arm_configs,
    arm_recipe,
    build_pipeline,
    build_resizer,
)
from downsizenet_hub.experiments.pretrain_options import PretrainOptions, PretrainReport
from downsizenet_hub.experiments.publish import publish_resizer
from downsizenet_hub.experiments.record import training_record
from downsizenet_hub.hub import store
from downsizenet_hub.hub.local import local_path
from downsizenet_hub.hub.record import OutputStatistics
from downsizenet_hub.registry import check_publishable, list_resizers
from downsizenet_hub.resizing.downsizenet import DownsizeNet

__all__ = [
    "BASELINES",
    "MOVED_IMAGES",
    "SCENES_BACKGROUND_WEIGHT",
    "PretrainOptions",
    "PretrainReport",
    "arm_config",
    "baseline_outputs",
    "build_pipeline",
    "describe_outputs",
    "publish_resizer",
    "run_pretrain",
    "training_record",
    "weight_moved",
]


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
    # Each arm's resizer is built once, here: a bad name fails now, not after the first arm.
    configs = arm_configs(options)
    resizers = {name: build_resizer(options, name, config) for name, config in configs.items()}
    info = dataset_info(options.data.name)
    train_set, val_set = options.data.datasets("segmentation")
    arms: list[ArmResult] = []
    trained: dict[str, nn.Module] = {}
    for name, config in configs.items():
        pipeline = build_pipeline(options, name, info.num_classes, resizer=resizers.pop(name))
        arm, result = train_arm(
            name, pipeline, train_set, val_set, options.train, options.run_dir / name,
            arm_recipe(options, name, config), resume=options.resume, progress=options.progress,
        )  # fmt: skip
        net = pipeline.resizer
        if _has_weights(net) and result is None:
            _load_final_weights(pipeline, options.run_dir / name)  # a reused run's weights
        arm.extra.update(_measure(net, val_set, options))
        arms.append(arm)
        trained[name] = pipeline
    _print_results(options, arms)
    published = pushed = None
    if options.publish is not None and is_main_process():
        published, pushed = _publish(options, arms, trained[options.resizer].resizer)
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


def _measure(net: object, val_set: Any, options: PretrainOptions) -> dict[str, Any]:
    """How far a trained learned resizer moved (nothing for a fixed one), for ``arm.extra``."""
    if isinstance(net, DownsizeNet):
        return {"weight_moved": weight_moved(net, val_set, options.data.resize_kwargs())}
    if isinstance(net, BASELINES):
        return {"outputs": asdict(baseline_outputs(net, val_set, options.data.resize_kwargs()))}
    return {}


def _print_results(options: PretrainOptions, arms: list[ArmResult]) -> None:
    """The comparison table, then how far each learned resizer moved."""
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


def _publish(
    options: PretrainOptions, arms: list[ArmResult], net: object
) -> tuple[str | None, str | None]:
    """Publish the trained resizer (``--publish``), and push it (``--push-to-hub``)."""
    assert options.publish is not None and isinstance(net, nn.Module)
    outputs = arms[0].extra.get("outputs")
    record = training_record(
        options,
        arms[0].metrics["miou"],
        baseline=arms[1].name if len(arms) > 1 else "none",
        baseline_score=arms[1].metrics.get("miou") if len(arms) > 1 else None,
        outputs=None if outputs is None else OutputStatistics(**outputs),
    )
    publish_resizer(net, record, name=options.publish, force=options.force)
    pushed = None
    if options.push_to_hub:
        hub.push_published(options.publish, options.push_to_hub)
        pushed = options.push_to_hub
    return options.publish, pushed


def _has_weights(module: object) -> bool:
    """A learned resizer (built in or a plugin's), not a fixed one."""
    return isinstance(module, nn.Module) and next(module.parameters(), None) is not None


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
