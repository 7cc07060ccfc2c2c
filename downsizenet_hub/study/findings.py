"""The findings of a study in words: one sentence per compared row and task, read mechanically off
the paired difference's interval.

An interval that excludes zero is reported as a difference, one that includes zero as none
detectable at this number of seeds, one seed as no interval at all; an interval wider than
:data:`RESOLUTION` says how many seeds would narrow it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from downsizenet_hub.study.aggregate import Estimate, t_quantile
from downsizenet_hub.study.cell import FAMILY_NAMES
from downsizenet_hub.study.cells import METRIC_NAMES, PRIMARY_METRIC, count_epochs
from downsizenet_hub.study.summaries import RowSummary

__all__ = ["RESOLUTION", "findings", "seeds_needed", "width_note"]


def findings(summaries: Sequence[RowSummary]) -> list[str]:
    """One sentence per compared row and task, read off the paired difference's interval; a
    comparison that several rows share (a pretraining two transfer experiments reuse) once."""
    sentences = []
    seen: set[tuple[object, ...]] = set()
    for summary in summaries:
        row = summary.row
        if row.is_baseline:
            continue
        for task, difference in summary.difference.items():
            cells = row.cells.get(task) or []
            family, variant = cells[0].scenes if cells else ("all", row.variant)
            if difference is not None:
                compared = (row.resizer.label, task, family, variant, row.scale, difference.values)
                if compared in seen:
                    continue
                seen.add(compared)
            where = variant if family == "all" else f"{variant} {FAMILY_NAMES.get(family, family)}"
            where += f", x{row.scale:g}"
            if row.pretrain_epochs is not None:
                where += f", pretrained {count_epochs(row.pretrain_epochs)}"
            metric = METRIC_NAMES[PRIMARY_METRIC[task]]
            label = f"{row.resizer.label} vs bilinear, {task} {metric} ({where})"
            if difference is None:
                sentences.append(f"{label}: no paired result yet.")
            elif difference.n == 1:
                sentences.append(
                    f"{label}: {difference.mean:+.2f} from one seed; no interval, so it cannot "
                    "be told apart from seed-to-seed noise."
                )
            else:
                interval = f"[{difference.ci_low:+.2f}, {difference.ci_high:+.2f}]"
                if difference.excludes_zero():
                    verdict = "better" if difference.mean > 0 else "worse"
                    sentence = (
                        f"{label}: {difference.mean:+.2f}, 95% CI {interval} excludes 0: "
                        f"{verdict} than bilinear at {difference.n} seeds."
                    )
                else:
                    sentence = (
                        f"{label}: {difference.mean:+.2f}, 95% CI {interval} includes 0: no "
                        f"difference detectable at {difference.n} seeds."
                    )
                sentences.append(sentence + width_note(difference))
    return sentences


#: The resolution a comparison should reach: a 95% interval no wider than this many points.
RESOLUTION = 1.0


def seeds_needed(difference: Estimate, half_width: float = RESOLUTION) -> int | None:
    """How many seeds would give a 95% interval of ``+-half_width`` at this spread (None: one
    seed, no spread known; capped at 1000)."""
    if difference.std is None:
        return None
    n = 2
    while (
        t_quantile(0.5 + difference.confidence / 2, n - 1) * difference.std / math.sqrt(n)
        > half_width
        and n < 1000
    ):
        n += 1
    return n


def width_note(difference: Estimate) -> str:
    """A sentence when the interval is wider than +-1 point, with the seeds it would take."""
    half = difference.half_width
    if half is None or half <= RESOLUTION:
        return ""
    needed = seeds_needed(difference)
    return (
        f" The interval is ±{half:.2f} wide, wider than ±{RESOLUTION:g}: at this spread about "
        f"{needed} seeds would narrow it to ±{RESOLUTION:g}."
    )
