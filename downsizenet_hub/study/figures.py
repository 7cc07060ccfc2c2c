"""Which figures a study's report holds: each drawn from the finished cells and saved."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from downsizenet_hub.study.cells import StudyPlan
from downsizenet_hub.study.cost_plot import score_vs_cost
from downsizenet_hub.study.families import study_families
from downsizenet_hub.study.family_outputs import FIGURE, IMAGE_RANGE, family_outputs
from downsizenet_hub.study.grids import resizer_grids
from downsizenet_hub.study.plots import score_vs_epochs, score_vs_scale
from downsizenet_hub.study.report import RowSummary
from downsizenet_hub.tools.compare import save_figure


def write_figures(
    plan: StudyPlan, summaries: Sequence[RowSummary], results_dir: Path
) -> list[tuple[str, str]]:
    """Draw and save every figure that has data; returns ``(caption, file name)`` pairs."""
    written: list[tuple[str, str]] = []
    # One seed draws no interval: its captions must not promise one.
    cis = "95% CIs" if len(plan.config.seeds) > 1 else "one seed, no intervals"
    charts = [
        (score_vs_scale, "score_vs_scale.png",
         f"Segmentation mIoU against output scale ({cis})"),
        (score_vs_epochs, "score_vs_epochs.png",
         "Segmentation mIoU and transferred detection mAP@0.5 against pretraining epochs "
         f"({cis}; fixed resizers need no pretraining)"),
        (score_vs_cost, "score_vs_cost.png",
         "Cost/accuracy frontier: each task's score against its pipeline's multiply-adds per "
         f"image ({cis}), each resizer through its output scales"),
    ]  # fmt: skip
    for draw, name, caption in charts:
        chart = draw(plan, summaries)
        if chart is not None:
            save_figure(chart, results_dir / name)
            written.append((caption, name))
    for index, figure in enumerate(resizer_grids(plan, results_dir, plan.config.grid_images)):
        name = f"resizers_val{index}.png"
        save_figure(figure, results_dir / name)
        written.append(
            (
                f"Validation image {index}: the resizers at real size and enlarged, and where the "
                "trained DownsizeNet moved weight away from its classical filter",
                name,
            )
        )
    outputs = family_outputs(plan, results_dir, study_families(plan.config))
    if outputs is not None:
        save_figure(outputs, results_dir / FIGURE)
        low, high = IMAGE_RANGE
        written.append(
            (
                "Bilinear's and each learned resizer's output on one validation image of each "
                f"scene family, unclipped: an output with values outside [{low:g}, {high:g}] is "
                "drawn channel by channel, each in its own colour range with its min and max",
                FIGURE,
            )
        )
    return written
