"""What pretrain and transfer share: data options, arms trained side by side, and the summary.

An *arm* is one resizer trained (or its heads trained) under settings identical to the others:
same seed, same data order, same network initialisation. Each arm gets its own run folder, so an
interrupted comparison resumes arm by arm, and a finished arm whose recipe matches is reused
rather than retrained (its ``metrics.json``, written last by the engine, found again by
:func:`downsizenet_hub.jsonfile.read_matching`, as a study cell's ``cell.json`` is).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from downsizenet_hub.atomic import write_json_atomic
from downsizenet_hub.data import build_dataset, collate, dataset_info
from downsizenet_hub.data.composition import DEFAULT_FAMILY, DEFAULT_LAYOUT, scene_layout
from downsizenet_hub.engine import FitResult, TrainConfig, fit, init_from_env, is_main_process
from downsizenet_hub.engine.checkpoint import CHECKPOINT_NAME
from downsizenet_hub.engine.distributed import barrier
from downsizenet_hub.experiments import defaults
from downsizenet_hub.jsonfile import read_matching
from downsizenet_hub.resizing.target import ResizeTarget, resize_target

SizePair = tuple[int, int]


@dataclass
class DataOptions:
    """Which data, where, at which pipeline input size, and how the resizer shrinks it."""

    # "scenes" (built-in, generated offline), "voc", "cityscapes" or "coco".
    name: str = "scenes"
    # Where a real dataset lives; None builds or reuses the scenes data.
    root: Path | None = None
    # "clean" or "noisy" (Gaussian sensor noise at full resolution, see the README).
    variant: str = "noisy"
    # Pipeline input size: images are first brought here with bilinear, as in the paper.
    image_size: SizePair | None = None
    # The resize under test: a factor, or an output size (checked once, into :attr:`target`).
    scale: float | None = defaults.SCALE
    size: SizePair | None = None
    # scenes only: number of train / val scenes and the scenes seed (None: the preset's).
    train_images: int | None = None
    val_images: int | None = None
    scenes_seed: int = 0
    # scenes only: the item layout, "large" or "small" (see data.composition.SCENE_LAYOUTS).
    items: str = DEFAULT_LAYOUT
    # scenes only: which objects and backgrounds, "all", "A" or "B" (SCENE_FAMILIES).
    family: str = DEFAULT_FAMILY

    def __post_init__(self) -> None:
        # The one check of --size / --scale: the checked target travels down to the pixels (a
        # pipeline takes it as it is). Not a dataclass field, so recipes and summaries, which
        # record the options as given, are unchanged.
        self._target = resize_target(self.size, self.scale, names=("--size", "--scale"))
        if self.scale is not None and not 0 < self.scale <= 4:
            raise ValueError(f"--scale must be in (0, 4], got {self.scale}.")
        scene_layout(self.items, self.family)  # validates both names

    def recipe(self) -> dict[str, Any]:
        """As JSON for a run's recipe (what decides whether a finished run is reused); the
        family only when it restricts the scenes, so runs made before families are reused."""
        data = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        if data["family"] == DEFAULT_FAMILY:
            del data["family"]
        return data

    @property
    def target(self) -> ResizeTarget:
        """The checked resize request (``--size`` or ``--scale``)."""
        return self._target

    def resize_kwargs(self) -> dict[str, Any]:
        return {"size": self.size} if self.size is not None else {"scale_factor": self.scale}

    def describe_resize(self) -> str:
        return f"{self.size[0]}x{self.size[1]}" if self.size is not None else f"x{self.scale:g}"

    def datasets(self, task: str) -> tuple[Any, Any]:
        """Train and val datasets in the shared sample format."""
        init_from_env()  # no-op outside torchrun
        # Under torchrun, rank 0 builds (or checks) the data first; the others then reuse it.
        if not is_main_process():
            barrier()
        datasets = (self.build("train", task), self.build("val", task))
        if is_main_process():
            barrier()
        return datasets

    def build(self, split: str, task: str) -> Any:
        """One split, built or reused here and now (no torchrun barriers: see :meth:`datasets`)."""
        kwargs: dict[str, Any] = {}
        if self.name == "scenes" and self.root is None:
            kwargs["seed"] = self.scenes_seed
            kwargs["config"] = scene_layout(self.items, self.family)
            if self.train_images is not None:
                kwargs["images"] = self.train_images
            if self.val_images is not None:
                kwargs["val_images"] = self.val_images
        return build_dataset(
            self.name,
            split,
            task=task,
            root=self.root,
            image_size=self.image_size or dataset_info(self.name).image_size,
            variant=self.variant,
            **kwargs,
        )


@dataclass
class ArmResult:
    """One trained arm: its metrics and where its run lives."""

    name: str
    metrics: dict[str, float]
    wall_time_s: float
    images_per_s: float
    run_dir: str
    reused: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def checkpoint_path(run_dir: Path) -> Path:
    """Where an arm's run keeps its latest checkpoint (the final weights once it has finished)."""
    return run_dir / CHECKPOINT_NAME


def seeded_build(seed: int, build_resizer: Callable[[], nn.Module], build_rest: Callable) -> Any:
    """Build an arm so that everything but the resizer starts identically in every arm.

    The resizer draws from its own RNG stream (``seed + 1``); the task network from ``seed``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        resizer = build_resizer()
    torch.manual_seed(seed)
    return build_rest(resizer)


def finished_result(
    run_dir: Path, recipe: dict[str, Any], config: TrainConfig
) -> dict[str, Any] | None:
    """The metrics.json of a completed run with this recipe and these settings, else None.

    ``log_every`` is the one setting that does not change a result.
    """
    completed = {"status": "completed", "recipe": _jsonable(recipe)}
    data = read_matching(run_dir / "metrics.json", completed, what="run metrics")
    if data is None:
        return None
    wanted = {k: v for k, v in _jsonable(config.to_dict()).items() if k != "log_every"}
    stored = {k: v for k, v in (data.get("config") or {}).items() if k != "log_every"}
    return data if stored == wanted else None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def train_arm(
    name: str,
    pipeline: nn.Module,
    train_set: Any,
    val_set: Any,
    config: TrainConfig,
    run_dir: Path,
    recipe: dict[str, Any],
    *,
    resume: bool,
    progress: bool,
) -> tuple[ArmResult, FitResult | None]:
    """Train one arm, or reuse its finished run; resume an interrupted one when asked."""
    done = finished_result(run_dir, recipe, config)
    if done is not None:
        history = done.get("history") or []
        seconds = sum(e.get("train_seconds", 0.0) + e.get("eval_seconds", 0.0) for e in history)
        arm = ArmResult(
            name, dict(done.get("final") or {}), float(seconds),
            float(done.get("images_per_s") or 0.0), str(run_dir), reused=True,
        )  # fmt: skip
        return arm, None
    has_checkpoint = checkpoint_path(run_dir).is_file()
    result = fit(
        pipeline, train_set, val_set, config, run_dir,
        resume=resume and has_checkpoint, collate_fn=collate, progress=progress,
        recipe=_jsonable(recipe),
    )  # fmt: skip
    arm = ArmResult(
        name, dict(result.final_metrics), result.wall_time_s, result.images_per_s, str(run_dir)
    )
    return arm, result


def summary_table(title: str, arms: Sequence[ArmResult], metrics: Sequence[str]) -> Table:
    """A rich table: one row per arm, the metrics, and the difference to the last arm."""
    table = Table(title=title)
    table.add_column("resizer")
    for metric in metrics:
        table.add_column(metric, justify="right")
    if len(arms) > 1:
        table.add_column(f"{metrics[0]} vs {arms[-1].name}", justify="right")
    table.add_column("train time", justify="right")
    table.add_column("images/s", justify="right")
    baseline = arms[-1].metrics.get(metrics[0]) if arms else None
    for arm in arms:
        row = [arm.name + (" (reused)" if arm.reused else "")]
        row += [_fmt(arm.metrics.get(m)) for m in metrics]
        if len(arms) > 1:
            value = arm.metrics.get(metrics[0])
            delta = value - baseline if value is not None and baseline is not None else None
            row.append("" if arm is arms[-1] or delta is None else f"{delta:+.2f}")
        row += [f"{arm.wall_time_s:.0f} s", f"{arm.images_per_s:.1f}"]
        table.add_row(*row)
    return table


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def write_summary(path: Path, payload: dict[str, Any]) -> None:
    """Atomically write a JSON summary (rank 0 only)."""
    if not is_main_process():
        return
    write_json_atomic(path, _jsonable(payload))


def print_table(table: Table) -> None:
    if is_main_process():
        Console().print(table)


def arms_payload(arms: Sequence[ArmResult]) -> list[dict[str, Any]]:
    return [asdict(a) for a in arms]
