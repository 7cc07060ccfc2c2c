"""Score against optimisation steps: do the built-in tasks' budgets sit on their plateau?

For each seed, in each task, bilinear, area and DownsizeNet are trained with the defaults of
``downsizenet pretrain`` / ``downsizenet transfer`` (or the budgets given here), evaluated after
every epoch:

- segmentation (``pretrain``): each resizer trains inside the segmentation pipeline;
- detection (``transfer``): bilinear and area, and the DownsizeNet that segmentation trained
  with the same seed, each frozen in front of the frozen VGG16; only the detection heads train.

It writes the curves (score, optimiser steps and cumulative training seconds per epoch), the
gain over the last quarter of each budget, the paired differences from bilinear with their 95%
t-intervals, and how far each trained DownsizeNet moved from bilinear (the mean share of each
output pixel's weight, on validation images) to JSON, prints a table, and draws a figure.

Runs are kept under ``--run-dir`` and reused when their recipe matches, so a rerun with more seeds
trains only what is new.

    python benchmarks/learning_curve.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, print_table, write_results

from downsizenet_hub.engine import TrainConfig
from downsizenet_hub.experiments.common import ArmResult, DataOptions
from downsizenet_hub.experiments.pretrain import PretrainOptions, run_pretrain
from downsizenet_hub.experiments.transfer import TransferOptions, run_transfer
from downsizenet_hub.study.aggregate import estimate, format_estimate, paired_difference

RESIZERS = ("bilinear", "area", "downsizenet")
TASK_METRIC = {"segmentation": "miou", "detection": "map_50"}
TASK_LABEL = {"segmentation": "segmentation mIoU (%)", "detection": "detection mAP@0.5 (%)"}


def _curve(run_dir: Path, steps_per_epoch: int, metric: str) -> list[dict]:
    """Per-epoch score, optimiser steps and cumulative training seconds of one finished run."""
    from downsizenet_hub.jsonfile import read_json

    history = read_json(run_dir / "metrics.json", what="run metrics").get("history") or []
    curve, seconds = [], 0.0
    for record in history:
        seconds += float(record.get("train_seconds") or 0.0)
        score = (record.get("metrics") or {}).get(metric)
        if score is not None:
            epoch = int(record["epoch"])
            curve.append(
                {"epoch": epoch, "steps": epoch * steps_per_epoch, "train_s": seconds,
                 "score": float(score)}
            )  # fmt: skip
    if not curve:
        raise RuntimeError(f"{run_dir} has no evaluated epochs; was it trained with eval_every=1?")
    return curve


def last_quarter_gain(curve: list[dict]) -> float:
    """Final score minus the score at three quarters of the budget.

    The curve is evaluated once per epoch; the score at 75% of the steps is interpolated linearly
    between the evaluations around it (the run's start counts as step 0, score 0).
    """
    points = [(0.0, 0.0)] + [(float(p["steps"]), float(p["score"])) for p in curve]
    mark = 0.75 * points[-1][0]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 <= mark <= x1:
            return points[-1][1] - (y0 + (y1 - y0) * (mark - x0) / (x1 - x0))
    raise ValueError("a learning curve needs at least one evaluated epoch.")


def _summaries(runs: list[dict]) -> list[dict]:
    rows = []
    for task in TASK_METRIC:
        finals = {
            resizer: {r["seed"]: r["curve"][-1]["score"] for r in runs
                      if r["task"] == task and r["resizer"] == resizer}
            for resizer in RESIZERS
        }  # fmt: skip
        for resizer in RESIZERS:
            mine = [r for r in runs if r["task"] == task and r["resizer"] == resizer]
            if not mine:
                continue
            gains = [last_quarter_gain(r["curve"]) for r in mine]
            moved = [r["weight_moved"] for r in mine if r.get("weight_moved") is not None]
            difference = (
                paired_difference(finals[resizer], finals["bilinear"])
                if resizer != "bilinear"
                else None
            )
            rows.append(
                {
                    "task": task,
                    "resizer": resizer,
                    "seeds": sorted(finals[resizer]),
                    "final": estimate(list(finals[resizer].values())).to_dict(),
                    "vs_bilinear": difference.to_dict() if difference is not None else None,
                    "last_quarter_gain_max": max(gains),
                    "weight_moved": estimate(moved).to_dict() if moved else None,
                    "steps": mine[0]["curve"][-1]["steps"],
                    "train_s_mean": sum(r["curve"][-1]["train_s"] for r in mine) / len(mine),
                }
            )
    return rows


def _figure(runs: list[dict], path: Path, scenes: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from downsizenet_hub.atomic import write_atomic_path

    colours = {"bilinear": "tab:blue", "area": "tab:orange", "downsizenet": "tab:green"}
    tasks = [task for task in TASK_METRIC if any(r["task"] == task for r in runs)]
    figure, axes = plt.subplots(
        1, len(tasks), figsize=(5 * len(tasks), 4), layout="constrained", squeeze=False
    )
    for ax, task in zip(axes[0], tasks, strict=True):
        top = 0.0
        for resizer in RESIZERS:
            mine = [r for r in runs if r["task"] == task and r["resizer"] == resizer]
            if not mine:
                continue
            steps = [p["steps"] for p in mine[0]["curve"]]
            scores = torch.tensor([[p["score"] for p in r["curve"]] for r in mine])
            mean = scores.mean(0)
            top = max(top, float(scores.max()))
            label = (
                resizer
                if task == "segmentation" or resizer != "downsizenet"
                else ("downsizenet (frozen, from segmentation)")
            )
            ax.plot(steps, mean, marker="o", ms=3, color=colours[resizer],
                    label=f"{label} (n={len(mine)})")  # fmt: skip
            if len(mine) > 1:
                ax.fill_between(steps, scores.min(0).values, scores.max(0).values,
                                color=colours[resizer], alpha=0.2, lw=0)  # fmt: skip
            final = steps[-1]
            ax.axvspan(0.75 * final, final, color="0.9", zorder=0)
        ax.set_ylim(0, math.ceil((top + 5) / 5) * 5)
        ax.set_xlabel("optimiser steps")
        ax.set_ylabel(TASK_LABEL[task])
        ax.set_title(f"{task} ({scenes}, x0.3)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    # One panel is half as wide: the caption goes on two lines there.
    gap = "; " if len(tasks) > 1 else "\n"
    figure.suptitle(
        f"Score against training steps; lines: mean over seeds{gap}bands: min to max; "
        "grey: last quarter of the budget",
        fontsize=9,
    )
    write_atomic_path(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--learned-seeds",
        type=int,
        nargs="*",
        default=None,
        help="seeds that also train DownsizeNet (default: all; it costs about 1.7x a fixed "
        "resizer's run)",
    )
    parser.add_argument(
        "--resizers", nargs="+", choices=RESIZERS, default=list(RESIZERS),
        help="resizers to train (default: all three)",
    )  # fmt: skip
    parser.add_argument(
        "--tasks", nargs="+", choices=list(TASK_METRIC), default=list(TASK_METRIC),
        help="tasks to run (default: both; detection freezes the seed's segmentation DownsizeNet)",
    )  # fmt: skip
    parser.add_argument("--family", default=None, help="scene family (A or B; default: all scenes)")
    parser.add_argument("--seg-epochs", type=int, default=None, help="default: pretrain's")
    parser.add_argument("--det-epochs", type=int, default=None, help="default: transfer's")
    parser.add_argument("--train-images", type=int, default=None, help="default: the commands'")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/learning_curve"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/learning_curve.json"))
    parser.add_argument("--figure", type=Path, default=Path("docs/learning_curve.png"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    pretrain_defaults, transfer_defaults = PretrainOptions(), TransferOptions()
    data = DataOptions(variant="noisy", scale=0.3)
    if args.family:
        data = replace(data, family=args.family)
    if args.train_images:
        data = replace(data, train_images=args.train_images)
    seg_train = replace(pretrain_defaults.train, eval_every=1, log_every=0)
    det_train = replace(transfer_defaults.train, eval_every=1, log_every=0)
    if args.seg_epochs:
        seg_train = replace(seg_train, epochs=args.seg_epochs)
    if args.det_epochs:
        det_train = replace(det_train, epochs=args.det_epochs)

    runs: list[dict] = []
    started = time.perf_counter()
    learned_seeds = set(args.seeds if args.learned_seeds is None else args.learned_seeds)
    # Steps per epoch: the same for every seed and resizer of a task (one data build each).
    seg_steps = _steps(data, "segmentation", seg_train)
    det_steps = _steps(data, "detection", det_train) if "detection" in args.tasks else 0
    for seed in args.seeds:
        resizer_dir = args.run_dir / f"seed{seed}" / "downsizenet-resizer"
        resizers = [r for r in args.resizers if r != "downsizenet" or seed in learned_seeds]
        for resizer in resizers if "segmentation" in args.tasks else []:
            options = replace(
                pretrain_defaults, data=data, resizer=resizer, compare=None,
                train=replace(seg_train, seed=seed),
                run_dir=args.run_dir / f"seed{seed}" / "segmentation",
                resume=True, progress=not args.no_progress,
            )  # fmt: skip
            report = run_pretrain(options)
            runs.append(_run("segmentation", resizer, seed, report.arms[0], seg_steps))
            if report.resizer is not None:
                report.resizer.save_pretrained(str(resizer_dir))
        for resizer in resizers if "detection" in args.tasks else []:
            ref = str(resizer_dir) if resizer == "downsizenet" else resizer
            options_t = replace(
                transfer_defaults, data=data, resizer=ref, compare=None,
                train=replace(det_train, seed=seed),
                run_dir=args.run_dir / f"seed{seed}" / "detection",
                resume=True, progress=not args.no_progress,
            )  # fmt: skip
            report_t = run_transfer(options_t)
            runs.append(_run("detection", resizer, seed, report_t.arms[0], det_steps))

    summaries = _summaries(runs)
    payload = {
        "command": "python " + " ".join(sys.argv),
        "machine": machine_info(),
        "wall_s": time.perf_counter() - started,
        "segmentation": {"data": asdict(data), "train": seg_train.to_dict()},
        "detection": {"data": asdict(data), "train": det_train.to_dict(),
                      "head": transfer_defaults.head},
        "summaries": summaries,
        "runs": runs,
    }  # fmt: skip
    write_results(args.out, payload)
    _figure(
        runs, args.figure, f"noisy scenes, family {args.family}" if args.family else "noisy scenes"
    )
    rows = [
        [s["task"], s["resizer"], format_estimate(_estimate(s["final"])),
         format_estimate(_estimate(s["vs_bilinear"]), signed=True),
         f"{s['last_quarter_gain_max']:+.2f}", s["steps"],
         "-" if s["weight_moved"] is None else f"{s['weight_moved']['mean']:.4f}"]
        for s in summaries
    ]  # fmt: skip
    print_table(
        "Learning curves: final score, vs bilinear (paired, 95% CI), last-quarter gain (max over "
        "seeds), steps, weight moved",
        ["task", "resizer", "final", "vs bilinear", "last 1/4 gain", "steps", "moved"],
        rows,
    )
    print(f"wrote {args.out} and {args.figure}")


def _estimate(data: dict | None) -> Any:
    from downsizenet_hub.study.aggregate import Estimate

    if data is None:
        return None
    return Estimate(**{**data, "values": tuple(data["values"])})


def _steps(data: DataOptions, task: str, train: TrainConfig) -> int:
    return len(data.build("train", task)) // train.batch_size


def _run(task: str, resizer: str, seed: int, arm: ArmResult, steps: int) -> dict:
    return {
        "task": task,
        "resizer": resizer,
        "seed": seed,
        "curve": _curve(Path(arm.run_dir), steps, TASK_METRIC[task]),
        "weight_moved": arm.extra.get("weight_moved"),
        "reused": arm.reused,
    }


if __name__ == "__main__":
    main()
