"""Training step throughput: a segmentation step (``pretrain``'s defaults) and a transfer arm.

Segmentation: images per second of one training step as ``downsizenet pretrain`` runs it (the
built-in noisy scenes at 300 px, x0.3, batch 8, the tiny backbone at width 32), for bilinear,
area, DownsizeNet 2x2 and antialias, and talebi; each step split into loading the batch (decode,
noise, transforms, collate) and the model's forward, backward and optimiser step. Resizers are
interleaved round by round in one process, and each round runs the same batches for every
resizer, so the ratios compare like with like.

Transfer: one arm of ``downsizenet transfer`` (bilinear, x0.3, the frozen VGG16 detector with
CenterNet heads, a random VGG16 trunk: the weights do not change the arithmetic) on a reduced
set of scenes, split as the engine records it: the first epoch (which computes and caches the
frozen features), the later head epochs on cached features, and evaluation.

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
from _common import machine_info, print_table, write_results

import downsizenet_hub
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
        }
    return {"batch": batch, "rounds": rounds, "resizers": rows}


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
    first = history[0]["train_seconds"]
    later = [record["train_seconds"] for record in history[1:]]
    evaluation = sum(record["eval_seconds"] for record in history)
    return {
        "train_images": train_images,
        "val_images": val_images,
        "epochs": epochs,
        "wall_s": wall,
        "first_epoch_s": first,
        "head_epoch_s": statistics.median(later) if later else None,
        "evaluation_s": evaluation,
        "other_s": wall - first - sum(later) - evaluation,
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
             f"{r['model_ms_per_image']:.1f}", f"{100 * r['data_share']:.0f}%"]
            for label, r in payload["segmentation"]["resizers"].items()
        ]  # fmt: skip
        print_table(
            "Segmentation step (pretrain defaults)",
            ["resizer", "images/s", "data ms/img", "model ms/img", "data share"],
            rows,
        )
    if args.only in (None, "transfer"):
        images = args.transfer_images
        payload["transfer"] = transfer(images, max(1, images // 4), args.transfer_epochs)
        t = payload["transfer"]
        print_table(
            f"Transfer arm (bilinear, {images} train images, {args.transfer_epochs} epochs)",
            ["wall s", "first epoch s", "head epoch s", "evaluation s", "other s"],
            [[f"{t['wall_s']:.1f}", f"{t['first_epoch_s']:.1f}", f"{t['head_epoch_s']:.1f}",
              f"{t['evaluation_s']:.1f}", f"{t['other_s']:.1f}"]],
        )  # fmt: skip
    if args.out is not None:
        write_results(args.out, payload)


if __name__ == "__main__":
    main()
