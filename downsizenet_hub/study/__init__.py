"""The generalisation study: cells, seeds, caching, aggregation and reports.

Start with :func:`run_study` on a :class:`StudyConfig` from :func:`preset` (``quick``, ``cpu``,
``paper``) or :func:`load_config` (a JSON/TOML study file); ``downsizenet study`` and
``downsizenet quickstart`` are thin commands over it.

Example::

    from downsizenet_hub.study import preset, run_study
    run = run_study(preset("quick"), Path("results/quickstart"))
    print(run.results_dir / "results.md")
"""

from downsizenet_hub.study.aggregate import Estimate, estimate, paired_difference
from downsizenet_hub.study.cell_run import CellResult
from downsizenet_hub.study.cells import Cell, Row, StudyPlan, plan_study
from downsizenet_hub.study.config import StudyConfig
from downsizenet_hub.study.config_file import load_config, study_config
from downsizenet_hub.study.console import plan_table
from downsizenet_hub.study.launch import Launch
from downsizenet_hub.study.presets import PRESETS, preset, preset_command
from downsizenet_hub.study.runner import StudyRun, resolved_plan, run_study

__all__ = [
    "PRESETS",
    "Cell",
    "CellResult",
    "Estimate",
    "Launch",
    "Row",
    "StudyConfig",
    "StudyPlan",
    "StudyRun",
    "estimate",
    "load_config",
    "paired_difference",
    "plan_study",
    "plan_table",
    "preset",
    "preset_command",
    "resolved_plan",
    "run_study",
    "study_config",
]
