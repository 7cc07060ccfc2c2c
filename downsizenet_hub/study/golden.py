"""Golden checks: what the code computes on fixed inputs, against a committed reference.

(Just over 300 lines: the four parts, their comparison and the command that rewrites the
reference belong together, as the reference file holds them together.)

They guard :data:`.numerics.NUMERICS_VERSION`: a change that moves any of these numbers is a
numerics change, and lands with the version bumped and the reference regenerated; a change that
moves none of them (beyond the tolerances) is an exact rewrite, and every cached cell stays
current. Four parts, each a dict of named float vectors:

- ``resizers``: every built-in resizer (the fixed ones; DownsizeNet in each neighbourhood with
  sigmoid and softmax coefficients and the paper's linear head; talebi; strided), freshly built
  under seed 0, on a fixed 2x3x24x26 input at x0.5 and to 7x9: the output, the gradient of a
  fixed projection of it with respect to the input and to every parameter.
- ``scenes``: a fixed batch of the built-in scenes (8 train images at 64 px, noisy and clean):
  images, masks, boxes and labels as the data path delivers them.
- ``segmentation``: 20 training steps of a tiny segmentation cell (DownsizeNet at x0.5, 4 epochs
  of 5 steps): each epoch's mean loss and learning rate, the final scores, the trained
  resizer's parameters.
- ``transfer``: 20 head steps of a tiny transfer cell (bilinear in front of a random VGG16 trunk
  made under seed 0): each epoch's mean loss and learning rate, the final scores.

A tensor is stored as checksums (float64): its sum, its sum of squares, and two projections on
fixed pseudo-random vectors, so any change to any element shows while the file stays small.

Tolerances (relative, with a small absolute floor), and why:

- resizers and scenes: 1e-4. One thread, float32: the same CPU gives the same bits, and another
  x86_64 or aarch64 vector unit reorders float32 sums (1e-7 per operation); a real change moves
  them by far more than 1e-4 (an initial std, a noise sigma: order 1).
- trajectories: 2e-3. Twenty optimiser steps carry rounding differences forward; a changed
  learning-rate schedule, loss or initialisation moves losses and parameters by 1e-2 and more.

The reference is per platform (``<machine>`` in its name): a CPU family without a reference is
skipped by the test with that said, rather than compared at a tolerance wide enough to hide real
changes. Regenerate it (after bumping the version) with::

    .venv/bin/python -m downsizenet_hub.study.golden --write

``--write`` refuses to replace a reference of the same numerics version whose numbers moved: bump
:data:`.numerics.NUMERICS_VERSION` first, that is what a numerics change costs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from downsizenet_hub.study.numerics import NUMERICS_VERSION

#: Where the references live (in the repository, beside the tests that read them).
REFERENCE_DIR = Path(__file__).resolve().parents[2] / "tests" / "golden"
TOLERANCES = {"resizers": 1e-4, "scenes": 1e-4, "segmentation": 2e-3, "transfer": 2e-3}
PARTS = tuple(TOLERANCES)
Numbers = dict[str, list[float]]
#: oneDNN picks its convolution kernels by the CPU's vector instructions, and their rounding
#: differs: on an AVX-512 host the same code moved the segmentation cell's final mIoU from
#: 64.66 to 65.05. So on x86_64 the golden numbers are computed with oneDNN held to AVX2, which
#: every x86_64 machine this project runs on has (:func:`pin_onednn_isa`).
ONEDNN_ISA = "AVX2"


def reference_path(machine: str | None = None) -> Path:
    return REFERENCE_DIR / f"numerics-{machine or platform.machine()}.json"


def pin_onednn_isa() -> None:
    """Hold oneDNN to :data:`ONEDNN_ISA` on x86_64 (``ONEDNN_MAX_CPU_ISA``), unless the
    environment already sets it. oneDNN reads it once, at its first primitive: call this
    before the process convolves anything (the test suite's conftest and :func:`main` do)."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault("ONEDNN_MAX_CPU_ISA", ONEDNN_ISA)


def checksum(tensor: torch.Tensor) -> list[float]:
    """Sum, sum of squares and two fixed random projections of ``tensor`` (float64)."""
    values = tensor.detach().to(torch.float64).flatten()
    generator = torch.Generator().manual_seed(1234)
    probes = torch.randn(2, values.numel(), generator=generator, dtype=torch.float64)
    return [float(values.sum()), float((values * values).sum()), *map(float, probes @ values)]


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _resizer_cases() -> dict[str, tuple[str, dict[str, Any]]]:
    cases: dict[str, tuple[str, dict[str, Any]]] = {
        name: (name, {}) for name in ("bilinear", "bicubic", "area", "antialias", "nearest")
    }
    for neighbourhood in ("bilinear", "bicubic", "antialias"):
        for coefficients in ("sigmoid", "softmax"):
            cases[f"downsizenet-{neighbourhood}-{coefficients}"] = (
                "downsizenet",
                {"neighbourhood": neighbourhood, "coefficients": coefficients},
            )
    cases["downsizenet-linear"] = ("downsizenet", {"coefficients": "linear"})
    cases["talebi"] = ("talebi", {})
    cases["strided"] = ("strided", {})
    return cases


def resizer_numbers() -> Numbers:
    """Outputs and gradients of every built-in resizer on fixed inputs."""
    from downsizenet_hub.registry import create_resizer

    numbers: Numbers = {}
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 24, 26, generator=generator)
    for label, (name, config) in _resizer_cases().items():
        torch.manual_seed(0)
        resizer: nn.Module = create_resizer(name, **config)
        targets: list[tuple[str, dict[str, Any]]] = [("x0.5", {"scale_factor": 0.5})]
        if name != "strided":  # strided takes 1/k scales only
            targets.append(("7x9", {"size": (7, 9)}))
        for target, kwargs in targets:
            inputs = images.clone().requires_grad_(True)
            output = resizer(inputs, **kwargs)
            numbers[f"{label} {target} output"] = checksum(output)
            weights = torch.linspace(-1, 1, output.numel()).reshape(output.shape)
            resizer.zero_grad()
            (output * weights).sum().backward()
            assert inputs.grad is not None
            numbers[f"{label} {target} input grad"] = checksum(inputs.grad)
            for parameter_name, parameter in resizer.named_parameters():
                if parameter.grad is not None:
                    numbers[f"{label} {target} grad {parameter_name}"] = checksum(parameter.grad)
    return numbers


def scenes_numbers() -> Numbers:
    """A fixed batch of the built-in scenes as the data path delivers it."""
    from downsizenet_hub.experiments.common import DataOptions

    numbers: Numbers = {}
    for variant in ("noisy", "clean"):
        options = DataOptions(
            variant=variant, image_size=(64, 64), train_images=8, val_images=4, scale=0.5
        )
        for split in ("train", "val"):
            dataset = options.build(split, "segmentation")
            for index in range(min(4, len(dataset))):
                image, target = dataset[index]
                name = f"{variant} {split} {index}"
                numbers[f"{name} image"] = checksum(image.as_subclass(torch.Tensor))
                numbers[f"{name} mask"] = checksum(target["mask"].as_subclass(torch.Tensor))
                numbers[f"{name} boxes"] = checksum(target["boxes"].as_subclass(torch.Tensor))
                numbers[f"{name} labels"] = checksum(target["labels"])
    return numbers


def _tiny_study(folder: Path) -> Any:
    from safetensors.torch import save_file
    from torchvision.models import vgg16

    from downsizenet_hub.study.config_file import study_config

    weights = folder / "vgg16_random.safetensors"
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in vgg16().features.state_dict().items()}, str(weights))
    data = {"train_images": 20, "val_images": 4, "image_size": [64, 64]}
    study = {
        "name": "golden",
        "seeds": [0],
        "variants": ["noisy"],
        "pretrain": {"epochs": 4, "batch_size": 4, "width": 8, "data": data},
        "transfer": {"epochs": 2, "batch_size": 2, "data": data, "backbone_weights": str(weights)},
        "experiments": [
            {"kind": "transfer", "title": "golden", "scale": 0.5, "pretrain_epochs": [4]}
        ],
    }
    return study_config(study)


def trajectory_numbers(parts: tuple[str, ...] = ("segmentation", "transfer")) -> dict[str, Numbers]:
    """Short training runs through the study's own cell path (data, pipeline, engine, schedule)."""
    from downsizenet_hub.study.cell_run import RESIZER_DIR, cell_folder, run_cell
    from downsizenet_hub.study.cells import plan_study

    out: dict[str, Numbers] = {}
    with tempfile.TemporaryDirectory(prefix="downsizenet-golden-") as tmp:
        folder = Path(tmp)
        plan = plan_study(_tiny_study(folder))
        learned = next(c for c in plan.cells if c.task == "segmentation" and c.resizer.learned)
        transfer = next(c for c in plan.cells if c.task == "transfer" and c.source is None)
        for part, cell in (("segmentation", learned), ("transfer", transfer)):
            if part not in parts:
                continue
            result = run_cell(cell, folder, device="cpu", progress=False)
            numbers: Numbers = {"final scores": [result.metrics[k] for k in sorted(result.metrics)]}
            for metrics_file in sorted(cell_folder(folder, cell).glob("run/*/metrics.json")):
                history = json.loads(metrics_file.read_text())["history"]
                numbers["epoch losses"] = [record["train_loss"] for record in history]
                numbers["epoch learning rates"] = [record["lr"] for record in history]
            if part == "segmentation":
                from safetensors.torch import load_file

                trained = cell_folder(folder, cell) / RESIZER_DIR / "model.safetensors"
                for name, tensor in sorted(load_file(str(trained)).items()):
                    numbers[f"resizer {name}"] = checksum(tensor)
            out[part] = numbers
    return out


def compute(parts: tuple[str, ...] = PARTS) -> dict[str, Numbers]:
    """The golden numbers of ``parts``, on one thread."""
    computed: dict[str, Numbers] = {}
    makers: dict[str, Callable[[], Numbers]] = {
        "resizers": resizer_numbers,
        "scenes": scenes_numbers,
    }
    with _one_thread():
        for part in parts:
            if part in makers:
                computed[part] = makers[part]()
        trajectories = tuple(p for p in parts if p in ("segmentation", "transfer"))
        if trajectories:
            computed.update(trajectory_numbers(trajectories))
    return computed


def differences(
    reference: dict[str, Numbers], computed: dict[str, Numbers], parts: tuple[str, ...] = PARTS
) -> list[str]:
    """One line per number that moved beyond its part's tolerance (or appeared, or vanished)."""
    moved = []
    for part in parts:
        tolerance = TOLERANCES[part]
        want, got = reference.get(part, {}), computed.get(part, {})
        for name in sorted(set(want) | set(got)):
            if name not in got or name not in want:
                moved.append(f"{part}: {name} {'missing' if name not in got else 'new'}")
                continue
            a, b = torch.tensor(want[name]), torch.tensor(got[name])
            if a.shape != b.shape or not torch.allclose(b, a, rtol=tolerance, atol=1e-6):
                moved.append(f"{part}: {name} was {want[name]}, now {got[name]}")
    return moved


def read_reference(path: Path | None = None) -> dict[str, Any] | None:
    path = path or reference_path()
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def write_reference(path: Path | None = None, parts: tuple[str, ...] = PARTS) -> Path:
    """Compute ``parts`` (default all) and write the reference for this platform, refusing to
    replace one of the same numerics version whose numbers moved (bump the version first)."""
    path = path or reference_path()
    computed = compute(parts)
    existing = read_reference(path)
    if existing is not None and existing.get("numerics_version") == NUMERICS_VERSION:
        moved = differences(existing["parts"], computed, parts)
        if moved:
            raise SystemExit(
                f"{len(moved)} golden numbers moved under numerics version {NUMERICS_VERSION} "
                f"(first: {moved[0][:200]}): bump NUMERICS_VERSION in "
                "downsizenet_hub/study/numerics.py, then write the reference again."
            )
    import torchvision

    document = {
        "numerics_version": NUMERICS_VERSION,
        "machine": platform.machine(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "tolerances": TOLERANCES,
        "parts": computed,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m downsizenet_hub.study.golden",
        description="Compare what this code computes with the golden reference of this "
        "platform, or (--write) write that reference.",
    )
    parser.add_argument("--write", action="store_true", help="write the reference")
    args = parser.parse_args(argv)
    pin_onednn_isa()
    if args.write:
        print(f"wrote {write_reference()}")
        return 0
    reference = read_reference()
    if reference is None:
        print(f"no golden reference for {platform.machine()} at {reference_path()}")
        return 1
    if reference["numerics_version"] != NUMERICS_VERSION:
        print(
            f"the reference is of numerics version {reference['numerics_version']}, the code "
            f"says {NUMERICS_VERSION}: write the reference again (--write)"
        )
        return 1
    moved = differences(reference["parts"], compute())
    for line in moved:
        print(line)
    print(f"{len(moved)} golden numbers moved" if moved else "golden checks: all numbers hold")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
