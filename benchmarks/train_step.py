"""Training step throughput: a segmentation step (``pretrain``'s defaults) and a transfer arm.

Segmentation: images per second of one training step as ``downsizenet pretrain`` runs it (the
built-in noisy scenes at 300 px, x0.3, batch 8, the tiny backbone at width 32), for bilinear,
area, DownsizeNet 2x2 and antialias, and talebi; each step split into loading the batch (decode,
noise, transforms, collate) and the model's forward, backward and optimiser step, with the
step's multiply-adds per image (forward and backward) and the rate the model reached. Resizers are
interleaved round by round in one process, and each round runs the same batches for every
resizer, so the ratios compare like with like.

Transfer: one arm of ``downsizenet transfer`` (bilinear, x0.3, the frozen VGG16 detector with
CenterNet heads, a random VGG16 trunk: the weights do not change the arithmetic) on a reduced
set of scenes, split as the engine records it: the first epoch (which computes and caches the
frozen features), the later head epochs on cached features, and evaluation. Each part is set
against its arithmetic: the multiply-adds it runs (``FlopCounterMode``: the frozen front per
image, a head step's forward and backward, an evaluation's front and head forward), the rate it
reached, and what it would take at the rate of the frozen front alone (timed on its own, the
trunk's convolutions being the transfer's bulk): the rest of each part is not arithmetic.

Runs on public APIs that predate this script, so the same file times an older checkout
(``PYTHONPATH=<old checkout> .venv/bin/python benchmarks/train_step.py``) for before/after
figures measured back to back on one machine:

    .venv/bin/python benchmarks/train_step.py --out benchmarks/results/train_step.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import machine_info, multiply_adds, print_table, time_interleaved, write_results

import downsizenet_hub
from downsizenet_hub.data import dataset_info
from downsizenet_hub.data.transforms import collate
from downsizenet_hub.engine import TrainConfig
from downsizenet_hub.engine.optim import build_optimizer, build_scheduler
from downsizenet_hub.experiments.common import DataOptions
from downsizenet_hub.experiments.pretrain import PretrainOptions, build_pipeline

RESIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "bilinear": ("bilinear", {}),
    "area": ("area", {}),
    "downsizenet": ("downsizenet", {}),
    "downsizenet-antialias": ("downsizenet", {"neighbourhood": "antialias"}),
    "talebi": ("talebi", {}),
}


def segmentation(rounds: int, batch: int, warmup: int) -> dict[str, Any]:
    options = PretrainOptions()
    dataset = options.data.build("train", "segmentation")
    num_classes = len(dataset.class_names)
    config = TrainConfig(epochs=1, batch_size=batch, lr=options.train.lr)
    arms = {}
    for label, (name, overrides) in RESIZERS.items():
        arm_options = PretrainOptions(resizer=name, resizer_config=overrides)
        pipeline = build_pipeline(arm_options, name, num_classes)
        pipeline.train()
        trainable = [p for p in pipeline.parameters() if p.requires_grad]
        optimizer = build_optimizer(trainable, config)
        scheduler = build_scheduler(optimizer, config, 10_000)
        arms[label] = (pipeline, optimizer, scheduler)
    macs = {label: _step_gmac(pipeline, optimizer, dataset, batch)
            for label, (pipeline, optimizer, _) in arms.items()}  # fmt: skip
    times: dict[str, dict[str, list[float]]] = {label: {"data": [], "model": []} for label in arms}
    for round_index in range(warmup + rounds):
        start = (round_index * batch) % (len(dataset) - batch)
        for label, (pipeline, optimizer, scheduler) in arms.items():
            began = time.perf_counter()
            images, targets = collate([dataset[i] for i in range(start, start + batch)])
            loaded = time.perf_counter()
            output = pipeline(images, targets)
            optimizer.zero_grad(set_to_none=True)
            output["loss"].backward()
            optimizer.step()
            scheduler.step()
            ended = time.perf_counter()
            if round_index >= warmup:
                times[label]["data"].append(loaded - began)
                times[label]["model"].append(ended - loaded)
    rows = {}
    for label, split in times.items():
        data, model = statistics.median(split["data"]), statistics.median(split["model"])
        rows[label] = {
            "images_per_s": batch / (data + model),
            "data_ms_per_image": 1000 * data / batch,
            "model_ms_per_image": 1000 * model / batch,
            "data_share": data / (data + model),
            "gmac_per_image": macs[label],
            "model_gmac_per_s": 1000 * macs[label] / (1000 * model / batch),
        }
    return {"batch": batch, "rounds": rounds, "resizers": rows}


def _step_gmac(pipeline: Any, optimizer: Any, dataset: Any, batch: int) -> float:
    """Multiply-adds per image (billions) of one step's forward and backward; the gradients are
    dropped, no optimiser step is taken."""
    images, targets = collate([dataset[i] for i in range(batch)])
    macs = multiply_adds(lambda: pipeline(images, targets)["loss"].backward())
    optimizer.zero_grad(set_to_none=True)
    return macs / 1e9 / batch


def transfer(train_images: int, val_images: int, epochs: int) -> dict[str, Any]:
    from safetensors.torch import save_file
    from torchvision.models import vgg16

    from downsizenet_hub.experiments.transfer import TransferOptions, run_transfer

    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "vgg16_random.safetensors"
        torch.manual_seed(0)
        trunk = vgg16().features.state_dict()
        save_file({k: v.contiguous() for k, v in trunk.items()}, str(weights))
        options = TransferOptions(
            data=DataOptions(train_images=train_images, val_images=val_images, scale=0.3),
            resizer="bilinear",
            compare=None,
            backbone_weights=str(weights),
            train=TrainConfig(epochs=epochs, batch_size=8, lr=2e-3, eval_every=epochs),
            run_dir=Path(folder) / "run",
            progress=False,
        )
        began = time.perf_counter()
        run_transfer(options)
        wall = time.perf_counter() - began
        metrics = next((Path(folder) / "run").glob("*/metrics.json"))
        history = json.loads(metrics.read_text())["history"]
        arithmetic = transfer_arithmetic(options)
    first = history[0]["train_seconds"]
    later = [record["train_seconds"] for record in history[1:]]
    evaluation = sum(record["eval_seconds"] for record in history)
    evaluations = sum(1 for record in history if record["eval_seconds"])
    gmac = {
        "first_epoch": train_images * (arithmetic["front_gmac"] + arithmetic["head_step_gmac"]),
        "head_epoch": train_images * arithmetic["head_step_gmac"],
        "evaluation": evaluations * val_images * arithmetic["eval_gmac"],
    }
    seconds = {
        "first_epoch": first,
        "head_epoch": statistics.median(later) if later else None,
        "evaluation": evaluation,
    }
    rate = arithmetic["front_gmac_per_s"]
    # Only the parts this run has (one epoch has no later head epoch; no evaluation, no time).
    split = {
        part: {
            "s": s,
            "gmac": gmac[part],
            "gmac_per_s": gmac[part] / s,
            "s_at_front_rate": gmac[part] / rate,
        }
        for part, s in seconds.items()
        if s
    }
    return {
        "train_images": train_images,
        "val_images": val_images,
        "epochs": epochs,
        "wall_s": wall,
        "first_epoch_s": first,
        "head_epoch_s": seconds["head_epoch"],
        "evaluation_s": evaluation,
        "other_s": wall - first - sum(later) - evaluation,
        "arithmetic": arithmetic,
        "split": split,
    }


def transfer_arithmetic(options: Any, rounds: int = 11) -> dict[str, float]:
    """Multiply-adds per image of the transfer arm's parts (``options`` as ``run_transfer``'s),
    and the frozen front's own rate: a batch of 8 timed alone, the median of ``rounds``."""
    from downsizenet_hub.backbones import frozen_vgg16
    from downsizenet_hub.pipelines.detection import DetectionPipeline, stride8_trunk
    from downsizenet_hub.registry import create_resizer

    train_set, _ = options.data.datasets("detection")
    images, targets = collate([train_set[i] for i in range(8)])
    trunk = stride8_trunk(frozen_vgg16(options.backbone_weights))
    resizer = create_resizer(options.resizer).requires_grad_(False)
    pipeline = DetectionPipeline(
        resizer, trunk, dataset_info(options.data.name).num_classes,
        scale_factor=options.data.scale, cache_features=False,
    )  # fmt: skip

    def counted(run: Any) -> float:
        return multiply_adds(run) / 1e9 / len(images)

    def step() -> None:
        pipeline(images, targets)["loss"].backward()

    pipeline.train()
    front = counted(lambda: pipeline.front(images))
    head_step = counted(step) - front
    pipeline.eval()
    with torch.no_grad():
        evaluation = counted(lambda: pipeline(images))
    times = time_interleaved({"front": lambda: pipeline.front(images)}, rounds)["front"]
    return {
        "front_gmac": front,
        "head_step_gmac": head_step,
        "eval_gmac": evaluation,
        "front_gmac_per_s": front * len(images) / statistics.median(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21, help="timed rounds (default 21)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--transfer-images", type=int, default=200)
    parser.add_argument("--transfer-epochs", type=int, default=3)
    parser.add_argument("--only", choices=["segmentation", "transfer"], default=None)
    parser.add_argument("--label", default=None, help="what the JSON calls this code")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    payload: dict[str, Any] = {
        "machine": machine_info(),
        "code": args.label or downsizenet_hub.__file__,
    }
    if args.only in (None, "segmentation"):
        payload["segmentation"] = segmentation(args.rounds, args.batch, args.warmup)
        rows = [
            [label, f"{r['images_per_s']:.1f}", f"{r['data_ms_per_image']:.1f}",
             f"{r['model_ms_per_image']:.1f}", f"{100 * r['data_share']:.0f}%",
             f"{r['gmac_per_image']:.2f}", f"{r['model_gmac_per_s']:.1f}"]
            for label, r in payload["segmentation"]["resizers"].items()
        ]  # fmt: skip
        print_table(
            "Segmentation step (pretrain defaults)",
            [
                "resizer",
                "images/s",
                "data ms/img",
                "model ms/img",
                "data share",
                "GMAC/img",
                "model GMAC/s",
            ],
            rows,
        )
    if args.only in (None, "transfer"):
        images = args.transfer_images
        payload["transfer"] = transfer(images, max(1, images // 4), args.transfer_epochs)
        t = payload["transfer"]
        print_table(
            f"Transfer arm (bilinear, {images} train images, {args.transfer_epochs} epochs)",
            ["wall s", "first epoch s", "head epoch s", "evaluation s", "other s"],
            [[f"{t['wall_s']:.1f}", f"{t['first_epoch_s']:.1f}",
              "-" if t["head_epoch_s"] is None else f"{t['head_epoch_s']:.1f}",
              f"{t['evaluation_s']:.1f}", f"{t['other_s']:.1f}"]],
        )  # fmt: skip
        rate = t["arithmetic"]["front_gmac_per_s"]
        print_table(
            f"Transfer arm against its arithmetic (frozen front alone: {rate:.1f} GMAC/s)",
            ["part", "s", "GMAC", "GMAC/s", "s at the front's rate", "beyond arithmetic"],
            [[part.replace("_", " "), f"{r['s']:.2f}", f"{r['gmac']:.1f}",
              f"{r['gmac_per_s']:.1f}", f"{r['s_at_front_rate']:.2f}",
              f"{round(1 - r['s_at_front_rate'] / r['s'], 2) + 0.0:.0%}"]
             for part, r in t["split"].items()],
        )  # fmt: skip
    if args.out is not None:
        write_results(args.out, payload)


if __name__ == "__main__":
    main()
