"""Linear probe of frozen VGG16 trunks on Fashion-MNIST: pretrained weights against random init.

Each trunk is a fixed feature extractor (``frozen_vgg16``, stride 16): 28x28 grey images are
upsampled (bilinear) to ``--size`` RGB, the conv5_3 features are pooled over space (global
average and global max, ``--pooling``) to 512 numbers, standardised, and a multinomial logistic
regression (its C chosen on a held-out quarter of the training images) is fitted on
``--train-images`` and scored on ``--test-images`` (both drawn with ``--seed``).

Arms: the pretrained weights (``--weights``, default ``hed``), the same architecture with
torchvision's random initialisation (seeded), and, for scale, logistic regression on the raw 28x28
pixels. The pretrained-minus-random test accuracy gets a 95% paired bootstrap interval over test
images (test-set sampling only, not seeds). Prints a table and writes JSON.

    python benchmarks/vgg_linear_probe.py --threads 2 --out benchmarks/results/vgg_linear_probe.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch
import torch.nn.functional as F
import torchvision
from _common import machine_info, print_table, write_results
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from downsizenet_hub.backbones import FrozenVGG16, frozen_vgg16
from downsizenet_hub.data.fashion_mnist import load_fashion_mnist


def subsample(
    images: torch.Tensor, labels: torch.Tensor, count: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random images (without replacement) and their labels."""
    order = torch.randperm(len(images), generator=generator)[:count]
    return images[order], labels[order]


def to_rgb(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(N, 28, 28)`` grey -> float ``(N, 3, size, size)`` RGB in ``[0, 1]``."""
    grey = images[:, None].float() / 255.0
    return F.interpolate(grey, size=(size, size), mode="bilinear", align_corners=False).expand(
        -1, 3, -1, -1
    )


POOLINGS = ("avg", "max")  # global average / global max over the stride-16 feature map


@torch.inference_mode()
def pooled_features(
    trunk: torch.nn.Module, images: torch.Tensor, size: int, batch_size: int
) -> dict[str, np.ndarray]:
    """``{"avg": (N, 512), "max": (N, 512)}`` pooled trunk features of uint8 ``(N, 28, 28)``."""
    chunks: dict[str, list[torch.Tensor]] = {pooling: [] for pooling in POOLINGS}
    for start in range(0, len(images), batch_size):
        features = trunk(to_rgb(images[start : start + batch_size], size))
        chunks["avg"].append(features.mean(dim=(2, 3)))
        chunks["max"].append(features.amax(dim=(2, 3)))
    return {pooling: torch.cat(parts).double().numpy() for pooling, parts in chunks.items()}


def random_vgg16(seed: int) -> FrozenVGG16:
    """VGG16's trunk with torchvision's own initialisation (Kaiming normal, zero biases), seeded."""
    torch.manual_seed(seed)
    features = torchvision.models.vgg16(weights=None).features
    return FrozenVGG16(
        features.state_dict(),
        source=f"random-init(seed={seed})",
        provenance=f"torchvision vgg16(weights=None) initialisation, torch.manual_seed({seed})",
    )


C_GRID = (0.01, 0.1, 1.0)  # inverse L2 strengths of the logistic regression, chosen per arm


def _classifier(C: float) -> Pipeline:
    # tol 1e-3 (sklearn default 1e-4) keeps each fit to seconds on 2 cores
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, tol=1e-3, max_iter=3000))


def probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    seed: int,
) -> tuple[dict[str, Any], np.ndarray]:
    """Standardise; pick C on a stratified quarter of the training images, refit on all of them.

    Returns (summary, per-test-image correctness). The test images play no part in choosing C.
    """
    start = time.perf_counter()
    fit_x, held_x, fit_y, held_y = train_test_split(
        train_x, train_y, test_size=0.25, random_state=seed, stratify=train_y
    )
    held_accuracy = {C: _classifier(C).fit(fit_x, fit_y).score(held_x, held_y) for C in C_GRID}
    best_c = max(C_GRID, key=lambda C: held_accuracy[C])
    classifier = _classifier(best_c).fit(train_x, train_y)
    correct = classifier.predict(test_x) == test_y
    summary = {
        "test_accuracy": float(correct.mean()),
        "train_accuracy": float(classifier.score(train_x, train_y)),
        "C": best_c,
        "fit_seconds": time.perf_counter() - start,
    }
    return summary, correct


def paired_bootstrap(
    correct_a: np.ndarray, correct_b: np.ndarray, seed: int, rounds: int = 10000
) -> tuple[float, float]:
    """95% interval of ``accuracy(a) - accuracy(b)``, resampling the same test images for both."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(correct_a), size=(rounds, len(correct_a)))
    differences = correct_a[picks].mean(axis=1) - correct_b[picks].mean(axis=1)
    low, high = np.quantile(differences, [0.025, 0.975])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="hed", help="auto, imagenet, hed or a state dict file")
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--test-images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64, help="side the 28x28 images go up to")
    parser.add_argument("--pooling", nargs="+", choices=POOLINGS, default=list(POOLINGS))
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="subsample and random-init seed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/vgg_linear_probe.json")
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(args.seed)
    train_images, train_labels = subsample(
        *load_fashion_mnist("train"), args.train_images, generator
    )
    test_images, test_labels = subsample(*load_fashion_mnist("test"), args.test_images, generator)
    train_y, test_y = train_labels.numpy(), test_labels.numpy()

    trunks = {"pretrained": frozen_vgg16(args.weights), "random": random_vgg16(args.seed)}
    rows: list[dict[str, Any]] = []
    correct: dict[tuple[str, str], np.ndarray] = {}
    for arm, trunk in trunks.items():
        start = time.perf_counter()
        train_x = pooled_features(trunk, train_images, args.size, args.batch_size)
        test_x = pooled_features(trunk, test_images, args.size, args.batch_size)
        seconds = time.perf_counter() - start
        for pooling in args.pooling:
            summary, correct[arm, pooling] = probe(
                train_x[pooling], train_y, test_x[pooling], test_y, args.seed
            )
            rows.append(
                {
                    "arm": arm,
                    "pooling": pooling,
                    "weights": trunk.source,
                    "provenance": trunk.provenance,
                    "weights_sha256": trunk.weights_sha256,
                    "features": int(train_x[pooling].shape[1]),
                    "feature_seconds": seconds,
                    **summary,
                }
            )
    pixels = [x.flatten(1).double().numpy() / 255.0 for x in (train_images, test_images)]
    summary, _ = probe(pixels[0], train_y, pixels[1], test_y, args.seed)
    rows.append(
        {
            "arm": "pixels",
            "pooling": "-",
            "weights": "raw pixels",
            "features": int(pixels[0].shape[1]),
            "feature_seconds": 0.0,
            **summary,
        }
    )
    gains: dict[str, dict[str, Any]] = {}
    for pooling in args.pooling:
        pretrained, random = correct["pretrained", pooling], correct["random", pooling]
        low, high = paired_bootstrap(pretrained, random, args.seed)
        gains[pooling] = {
            "test_accuracy": float(pretrained.mean() - random.mean()),
            "bootstrap_95": [low, high],
        }

    columns = ["arm", "pooling", "weights", "test acc", "train acc", "C", "feature s", "fit s"]
    keys = ["arm", "pooling", "weights", "test_accuracy", "train_accuracy", "C"]
    print_table(
        f"VGG16 linear probe, Fashion-MNIST {args.train_images}/{args.test_images} at "
        f"{args.size}px, seed {args.seed}",
        columns,
        [[row[key] for key in [*keys, "feature_seconds", "fit_seconds"]] for row in rows],
    )
    for pooling, gain in gains.items():
        low, high = gain["bootstrap_95"]
        print(
            f"{pooling} pooling, pretrained - random test accuracy: {gain['test_accuracy']:+.3f} "
            f"(95% paired bootstrap interval {low:+.3f} to {high:+.3f})"
        )
    write_results(
        args.out,
        {
            "benchmark": "vgg_linear_probe",
            "command": " ".join(["python", *sys.argv]),
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "machine": {**machine_info(), "sklearn": sklearn.__version__},
            "rows": rows,
            "pretrained_minus_random": gains,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
