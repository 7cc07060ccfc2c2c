"""``downsizenet study`` and ``downsizenet quickstart``: the generalisation study, by cell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from downsizenet_hub.cli.common import DeviceOpt, PluginOpt, ProgressOpt, user_errors

ResultsDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--results-dir",
        help="Where results, cells and plots go (default: results/<study name>). Rerunning into "
        "the same folder reuses every finished cell.",
    ),
]
KeepCheckpointsOpt = Annotated[
    bool,
    typer.Option(
        "--keep-checkpoints",
        help="Keep finished cells' checkpoints (about 16 MB per segmentation cell, 9 MB "
        "per transfer cell); by default they are deleted once a cell's result is written.",
    ),
]


def study(
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="quick (the quickstart, <10 min on 2 CPU cores), cpu (the paper's main "
            "questions, 3 seeds, about 1.5-2 h on 2 cores), full (every question, several "
            "hours, resumable), plateau (the decisive study: the plateau budget, transfers "
            "to new objects, about 4 h with 2 workers) or paper (the paper's settings, for "
            "GPUs with VOC and Cityscapes).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="A study file (.json, or .toml on Python 3.11+) instead of a preset; see "
            "downsizenet_hub/study/config_file.py for the fields.",
        ),
    ] = None,
    results_dir: ResultsDirOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="List the cells, their status and rough times; run none."),
    ] = False,
    report_only: Annotated[
        bool,
        typer.Option(
            "--report-only", help="Train nothing: rebuild the report from the finished cells."
        ),
    ] = False,
    keep_checkpoints: KeepCheckpointsOpt = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Cells computed at once, each by a one-thread worker (local), or the most "
            "Slurm jobs running at once (slurm; 0: no cap). Other study commands on the same "
            "--results-dir share its cells: each is computed once.",
        ),
    ] = 1,
    launcher: Annotated[
        str,
        typer.Option(
            "--launcher",
            help="local (this machine) or slurm (a submitit job per cell; not tested on a real "
            "cluster here).",
        ),
    ] = "local",
    partition: Annotated[
        str | None, typer.Option("--partition", help="Slurm partition (slurm only).")
    ] = None,
    time_min: Annotated[
        int, typer.Option("--time-min", help="Time limit of each job in minutes.")
    ] = 24 * 60,
    gpus_per_cell: Annotated[
        int, typer.Option("--gpus-per-cell", help="GPUs each job gets (slurm; local: 0).")
    ] = 0,
    device: DeviceOpt = "auto",
    progress: ProgressOpt = True,
    plugin: PluginOpt = None,
) -> None:
    """Run the paper's cross-task study: pretrain on segmentation, transfer frozen to detection.

    Each cell (one run for one seed) lives in its own folder under --results-dir; a finished
    cell is never trained again and a killed one resumes from its checkpoint. The study ends
    with results.json, results.md (mean ± std and 95% intervals, differences to bilinear paired
    by seed), plots of score against scale and against pretraining epochs, and an image grid of
    the resizers with DownsizeNet's coefficient maps.

    \b
    Examples:
      downsizenet study --preset cpu --dry-run
      downsizenet study --preset cpu --workers 2
    """
    from downsizenet_hub.engine import TrainingError
    from downsizenet_hub.study import Launch, load_config, preset_command
    from downsizenet_hub.study import preset as load_preset
    from downsizenet_hub.study.launch import WorkerFailed

    with user_errors(TrainingError, WorkerFailed):
        launch = Launch(
            launcher=launcher,  # type: ignore[arg-type]  # checked by Launch
            workers=workers, partition=partition, time_min=time_min,
            gpus_per_cell=gpus_per_cell,
        )  # fmt: skip
        if (preset is None) == (config is None):
            raise ValueError(
                "give exactly one of --preset (quick, cpu, full, plateau, paper) or --config FILE."
            )
        if dry_run and report_only:
            raise ValueError("give --dry-run or --report-only, not both.")
        if preset is not None:
            study_config, command = load_preset(preset), preset_command(preset)
        else:
            assert config is not None
            study_config, command = load_config(config), f"downsizenet study --config {config}"
        command += "".join(f" --plugin {spec}" for spec in plugin or ())
        _run(study_config, command, results_dir, dry_run, report_only, keep_checkpoints, device,
             progress, launch)  # fmt: skip


def quickstart(
    results_dir: ResultsDirOpt = None,
    keep_checkpoints: KeepCheckpointsOpt = False,
    device: DeviceOpt = "auto",
    progress: ProgressOpt = True,
) -> None:
    """The main job in one command, in under 10 minutes on a 2-core CPU.

    Builds the built-in scenes (noisy variant), pretrains DownsizeNet in the segmentation
    pipeline beside bilinear at x0.3, publishes it to the local hub as
    quickstart/downsizenet-x0.3, transfers it frozen to the frozen-VGG16 detector beside
    bilinear, and writes a table, results.md and plots to results/quickstart/. A second run
    reuses everything. Same as `downsizenet study --preset quick`.

    \b
    Example:
      downsizenet quickstart
    """
    from downsizenet_hub.engine import TrainingError
    from downsizenet_hub.study import preset, preset_command

    with user_errors(TrainingError):
        _run(preset("quick"), preset_command("quick"), results_dir, False, False,
             keep_checkpoints, device, progress)  # fmt: skip


def _run(
    study_config: object,
    command: str,
    results_dir: Path | None,
    dry_run: bool,
    report_only: bool,
    keep_checkpoints: bool,
    device: str,
    progress: bool,
    launch: object = None,
) -> None:
    from downsizenet_hub.study import Launch, StudyConfig, plan_table, resolved_plan, run_study
    from downsizenet_hub.study.console import study_console

    assert isinstance(study_config, StudyConfig)
    assert launch is None or isinstance(launch, Launch)
    folder = results_dir if results_dir is not None else Path("results") / study_config.name
    if dry_run:
        workers = launch.workers if launch is not None and launch.launcher == "local" else 1
        plan = resolved_plan(study_config, strict=False)
        study_console().print(plan_table(plan, folder, workers))
        return
    run_study(
        study_config,
        folder,
        command=command,
        device=device,
        progress=progress,
        keep_checkpoints=keep_checkpoints,
        report_only=report_only,
        launch=launch,
    )
