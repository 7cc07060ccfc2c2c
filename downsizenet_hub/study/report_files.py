"""What a finished study writes: its resizers published, and the report files.

``results.json``, ``results.md`` and the figures are written from every finished cell once all
are done, or as a partial report that never replaces a complete one; the study's publications
go to the local hub (rank 0 under torchrun).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from downsizenet_hub.engine import is_main_process
from downsizenet_hub.engine.distributed import barrier
from downsizenet_hub.jsonfile import read_json
from downsizenet_hub.study.cell_run import RESIZER_DIR, CellResult, cell_folder, read_result
from downsizenet_hub.study.cells import StudyPlan
from downsizenet_hub.study.cost import cost_points, cost_table
from downsizenet_hub.study.differences import difference_figure, transfer_targets_table
from downsizenet_hub.study.families import study_families
from downsizenet_hub.study.figures import write_figures
from downsizenet_hub.study.item_map_table import item_map_rows, item_map_table
from downsizenet_hub.study.movement import movement_table, movements
from downsizenet_hub.study.publishing import (
    measured_outputs,
    publish_study_resizer,
    study_record,
)
from downsizenet_hub.study.report import (
    RowSummary,
    StudyTotals,
    head_to_head,
    markdown_report,
    results_document,
    write_json,
    write_text,
)
from downsizenet_hub.tools.compare import save_figure

DIFFERENCE_FIGURE = "difference_from_bilinear.png"
DIFFERENCE_CAPTION = (
    "Each resizer's score minus bilinear's under the same seed, with the paired 95% interval: "
    "what the tables' Δ columns say, drawn (an interval clear of 0 is a detectable difference)"
)
TARGETS_INTRO = (
    "Each pretrained resizer frozen into detection on the scenes it was pretrained on and on "
    "another scene family (new objects on new backgrounds), beside the fixed resizers; the "
    "paper's claim is that a learned resizer's output stays an image and so transfers."
)
#: Keeps bulky or per-machine files out of git when results are committed: the engine's run
#: folders (checkpoints, logs), the workers' claim locks and the launcher's job files.
GITIGNORE = (
    "# written by downsizenet study: run folders are bulky and reproducible; claims and job\n"
    "# files belong to the machine that ran them\n"
    "cells/*/run/\ncells/*/claim/\njobs/\n"
)


@dataclass
class StudyRun:
    """What :func:`run_study` did: the plan, every finished result, the row summaries, files."""

    plan: StudyPlan
    results: dict[str, CellResult]
    summaries: list[RowSummary]
    results_dir: Path
    totals: StudyTotals
    files: list[Path] = field(default_factory=list)


def finished_results(plan: StudyPlan, results_dir: Path) -> dict[str, CellResult]:
    """Every finished cell's result as it is on disk (of any numerics version)."""
    found = {cell.key: read_result(results_dir, cell) for cell in plan.cells}
    return {key: result for key, result in found.items() if result is not None}


def complete_report_exists(results_dir: Path) -> bool:
    try:
        document = read_json(results_dir / "results.json", what="study report")
        totals = document["totals"]
        return bool(totals["finished"] == totals["cells"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def write_gitignore(results_dir: Path) -> None:
    gitignore = results_dir / ".gitignore"
    try:
        current = gitignore.read_text(encoding="utf-8")
    except OSError:
        current = ""
    if current != GITIGNORE:
        write_text(gitignore, GITIGNORE)


def publish_finished(
    plan: StudyPlan,
    results_dir: Path,
    results: dict[str, CellResult],
    command: str,
    say: Callable[..., None],
) -> list[str]:
    """Publish the plan's finished resizers under the names it gives them (rank 0)."""
    done = []
    for cell, name in plan.publications:
        if cell.key not in results:
            continue
        if is_main_process():
            folder = cell_folder(results_dir, cell) / RESIZER_DIR
            update = functools.partial(
                study_record, plan=plan, results=results, trained=cell, command=command,
                outputs=measured_outputs(cell, folder),
            )  # fmt: skip
            if publish_study_resizer(folder, name, command, update):
                say(f"published {name} to the local hub")
        barrier()
        done.append(name)
    return done


def write_report(run: StudyRun, command: str) -> list[Path]:
    results_dir = run.results_dir
    figures = write_figures(run.plan, run.summaries, results_dir)
    comparisons = head_to_head(run.plan, run.results)
    document = results_document(
        run.plan, run.results, run.summaries, run.totals, command, comparisons
    )
    families = study_families(run.plan.config)
    item_maps = item_map_rows(run.summaries, results_dir, families) if families else []
    if families:  # a study without scene families keeps its results.json as it was
        document["item_maps"] = [row.to_json() for row in item_maps]
    write_json(results_dir / "results.json", document)
    cost = cost_table(cost_points(run.plan, run.summaries), run.results)
    movement = movement_table(movements(run.summaries, results_dir, families), families)
    difference = difference_figure(run.summaries)
    if difference is not None:
        save_figure(difference, results_dir / DIFFERENCE_FIGURE)
        figures.insert(0, (DIFFERENCE_CAPTION, DIFFERENCE_FIGURE))
    text = markdown_report(
        run.plan, run.summaries, run.totals, command, figures, comparisons, cost, movement,
        item_map_table(item_maps) if item_maps else "",
    )  # fmt: skip
    targets = transfer_targets_table(run.summaries)
    if targets:
        section = f"## Same objects, new objects\n\n{TARGETS_INTRO}\n\n{targets}\n\n"
        anchor = text.find("## Head to head")
        text = text[:anchor] + section + text[anchor:] if anchor >= 0 else text + section
    write_text(results_dir / "results.md", text)
    return [results_dir / "results.json", results_dir / "results.md"] + [
        results_dir / name for _, name in figures
    ]
