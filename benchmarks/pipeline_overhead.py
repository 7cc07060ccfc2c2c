"""What a resizer adds to a frozen-VGG16 pipeline (issue 9): time, training step, memory, cache.

Four measurements, each against bilinear in the same process, interleaved, medians of repeats:

1. ``inference``: resizer + frozen VGG16 conv trunk (``--trunk full``: all of
   ``vgg16().features``, channels-last; ``conv4_3``: the transfer detector's backbone) vs
   ``F.interpolate`` bilinear + the same trunk, batch 1 and 8, 300->160 and 513->179, under both
   allocator settings (each in its own child process; ``--allocator kept|default`` for one).
   ``--compiled`` adds a third arm: the same DownsizeNet after ``resizer.compile()``.
   Beside the measured ratio: the quartiles of the per-round ratios, and the *arithmetic floor*
   ``1 + resizer MACs / trunk MACs`` (``torch.utils.flop_counter``), the ratio the resizer would
   cost if its convolutions ran exactly as efficiently as the trunk's.
2. ``training``: one ``pretrain`` step (forward, backward, AdamW) of the segmentation pipeline with
   DownsizeNet vs with bilinear: the default CPU network (``tiny``) and a ResNet-50 backbone.
   With ``--profile-steps N`` (default 3; 0: off), a ``torch.profiler`` run of N DownsizeNet steps
   gives the share of the step's operator time spent in the gathers (``index_select`` forward,
   ``index_add_`` / ``index_fill_`` backward and the block grid's padding) and in the mix (the
   batched products of taps and coefficients, ``bmm``, forward and backward; the pretrain
   backbones have none of their own), outside the timed rounds.
3. ``memory``: peak extra resident memory of one DownsizeNet inference at 1024x2048 -> x0.3,
   relative to the bytes of input plus output (measured in a fresh subprocess per resizer).
4. ``feature_cache``: a transfer epoch with the frozen-front cache warm vs without the cache, at
   the transfer default (300 px, x0.3) and the paper's VOC size (513 -> 179).

    python benchmarks/pipeline_overhead.py --out benchmarks/results/pipeline_overhead.json

``--runs 3`` measures the inference cases in three fresh processes per allocator setting
(alternating) and reports the median of their ratios, since a ratio moves by up to 0.05 between
runs of the same code here (the docs' table: ``--only inference --repeats 41 --runs 3``).
``--cases 300-160`` (or ``513-179``) measures one inference case, ``--no-reuse`` turns off the
resizer's workspace (:mod:`downsizenet_hub.resizing.workspace`) to measure what it saves. A smoke
run that only checks the script works: ``--only inference training --repeats 1 --batches 1
--cases 300-160 --trunk conv4_3 --train-backbones tiny --train-batch 1 --profile-steps 1``.

``--device cuda`` runs the same measurements on a GPU, timed with CUDA events (memory: the CUDA
allocator's peak). The allocator matters on this machine (see issue 9 and
:mod:`downsizenet_hub.allocator`): by default the benchmark keeps freed memory in the process, as
the ``downsizenet`` command does; glibc's defaults are what a library user gets. By default the
inference rows are measured under both (the other measurements keep freed memory); the JSON
records the setting of every row.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from _common import (
    add_allocator_option,
    apply_allocator,
    machine_info,
    median,
    multiply_adds,
    paired_ratio_quartiles,
    print_table,
    run_child,
    time_interleaved,
    write_results,
)
from torchvision import tv_tensors
from torchvision.models import vgg16

from downsizenet_hub import DownsizeNet
from downsizenet_hub.backbones import FrozenVGG16
from downsizenet_hub.pipelines.detection import DetectionPipeline, FrozenFront, stride8_trunk
from downsizenet_hub.pipelines.segmentation import SegmentationPipeline
from downsizenet_hub.resizing import anchors, native, texture
from downsizenet_hub.resizing.fixed import FixedResizer

CASES = {"300-160": ((300, 300), (160, 160)), "513-179": ((513, 513), (179, 179))}


#: ``conv4_3``: the transfer detector's trunk (stride 8); ``full``: all of ``vgg16().features``.
TRUNKS = ("conv4_3", "full")
#: The ``--compiled`` arm: DownsizeNet after ``resizer.compile()``.
COMPILED = "downsizenet-3-compiled"
#: Operators of a DownsizeNet training step, grouped for ``--profile-steps`` (see the module).
PROFILE_GROUPS: dict[str, tuple[str, ...]] = {
    "gathers": ("aten::index_select", "aten::index_add_", "aten::index_fill_"),
    "mix": ("aten::bmm",),
}


def _trunk(which: str = "conv4_3") -> torch.nn.Module:
    torch.manual_seed(0)  # speed does not depend on the weights' values
    trunk = FrozenVGG16(vgg16().features.state_dict(), source="random", drop_last_pool=False)
    return (stride8_trunk(trunk) if which == "conv4_3" else trunk).eval()


def _rand(batch: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, device=device)


def inference(
    repeats: int,
    batches: list[int],
    device: torch.device,
    trunk_name: str = "conv4_3",
    compiled: bool = False,
    cases: list[str] | None = None,
    reuse: bool = True,
) -> list[dict[str, Any]]:
    trunk = _trunk(trunk_name).to(device)
    resizers = {"bilinear": FixedResizer("bilinear"), "downsizenet-3": DownsizeNet().eval()}
    resizers["downsizenet-3"].to(device)
    resizers["downsizenet-3"].reuse_temporaries = reuse
    if compiled:
        # nn.Module.compile(): the same weights, forward compiled in place by torch.compile.
        resizers[COMPILED] = copy.deepcopy(resizers["downsizenet-3"])
        resizers[COMPILED].compile()
    rows = []
    for case, (in_size, out_size) in CASES.items():
        if cases is not None and case not in cases:
            continue
        resizer_macs = _macs(resizers["downsizenet-3"], _rand(1, *in_size, device=device), out_size)
        trunk_macs = _macs(trunk, _rand(1, *out_size, device=device))
        for batch in batches:
            images = _rand(batch, *in_size, device=device)
            compiled_facts = _compile_facts(resizers, images, out_size) if compiled else {}
            runs = {name: _forward(trunk, r, images, out_size) for name, r in resizers.items()}
            runs["resizer-only"] = _forward(None, resizers["downsizenet-3"], images, out_size)
            times = time_interleaved(runs, repeats, device=device)
            rows.append({
                "case": case, "batch": batch, **_against_bilinear(times), **compiled_facts,
                "resizer_only_ms": 1000 * median(times["resizer-only"]),
                "resizer_gmac_per_image": resizer_macs / 1e9,
                "trunk_gmac_per_image": trunk_macs / 1e9,
                "arithmetic_floor": 1 + resizer_macs / trunk_macs,
                "times_s": times,
            })  # fmt: skip
    return rows


def _compile_facts(
    resizers: dict[str, torch.nn.Module], images: torch.Tensor, size: tuple[int, int]
) -> dict[str, float]:
    """Compile the ``--compiled`` arm for this shape (timed, outside the rounds) and how far its
    output is from eager's."""
    with torch.inference_mode():
        start = time.perf_counter()
        out = resizers[COMPILED](images, size=size)
        compile_s = time.perf_counter() - start
        reference = resizers["downsizenet-3"](images, size=size)
    return {"compile_s": compile_s, "compiled_max_abs_diff": (out - reference).abs().max().item()}


def _against_bilinear(times: dict[str, list[float]]) -> dict[str, Any]:
    """Medians of both arms, their ratio and the quartiles of the per-round ratios."""
    base = median(times["bilinear"])
    row = {
        "bilinear_ms": 1000 * base,
        "downsizenet_ms": 1000 * median(times["downsizenet-3"]),
        "ratio": median(times["downsizenet-3"]) / base,
        "ratio_quartiles": list(paired_ratio_quartiles(times["downsizenet-3"], times["bilinear"])),
    }
    if COMPILED in times:
        row["compiled_ms"] = 1000 * median(times[COMPILED])
        row["compiled_ratio"] = median(times[COMPILED]) / base
        row["compiled_ratio_quartiles"] = list(
            paired_ratio_quartiles(times[COMPILED], times["bilinear"])
        )
    return row


def _macs(module: torch.nn.Module, *args: Any) -> float:
    """Multiply-adds of one inference call (convolutions and matrix products), counted by PyTorch.

    Counted without autograd, as the call runs, but with DownsizeNet's plain layers: the flop
    counter does not know the fused oneDNN conv + ReLU kernel it uses for inference on the CPU,
    nor the compiled kernels of ``resizing/native.py``. Where the compiled anchor conv runs, its
    arithmetic is the grid of blocks' (the last conv at the anchors only), so that path is
    counted instead."""
    compiled = native.kernels() is not None

    def at_anchors(in_size: tuple[int, int], out_size: tuple[int, int]) -> bool:
        return (compiled and native.pays(in_size, out_size)) or anchors.anchors_pay(
            in_size, out_size
        )

    def at_rows(in_size: tuple[int, int], out_size: tuple[int, int]) -> bool:
        return not at_anchors(in_size, out_size) and anchors.anchor_rows_pay(in_size, out_size)

    with (
        torch.no_grad(),
        mock.patch.object(texture, "fused_available", return_value=False),
        mock.patch.object(native, "kernels", return_value=None),
        mock.patch.object(texture, "anchors_pay", at_anchors),
        mock.patch.object(texture, "anchor_rows_pay", at_rows),
    ):
        return multiply_adds(lambda: module(*args))


def _forward(
    trunk: torch.nn.Module | None,
    resizer: torch.nn.Module,
    images: torch.Tensor,
    size: tuple[int, int],
) -> Callable[[], None]:
    """The transfer detector's frozen front (resizer, then the trunk on channels-last images)."""
    front = FrozenFront(resizer, trunk, {"size": size}) if trunk is not None else None

    def run() -> None:
        with torch.inference_mode():
            if front is not None:
                front(images)
            else:
                resizer(images, size=size)

    return run


def training(
    repeats: int,
    batch: int,
    backbones: list[str],
    device: torch.device,
    profile_steps: int = 0,
) -> list[dict[str, Any]]:
    images = _rand(batch, 300, 300, device=device)
    masks = torch.randint(0, 11, (batch, 300, 300), device=device)
    targets = [{"mask": tv_tensors.Mask(mask)} for mask in masks]
    rows = []
    for backbone in backbones:
        steps = {}
        for name, resizer in (
            ("bilinear", FixedResizer("bilinear")),
            ("downsizenet-3", DownsizeNet()),
        ):
            torch.manual_seed(0)
            pipeline = SegmentationPipeline(resizer, 11, scale_factor=0.3, backbone=backbone)
            pipeline.to(device).train()
            optimiser = torch.optim.AdamW(pipeline.parameters(), lr=1e-3)

            def step(p: torch.nn.Module = pipeline, o: torch.optim.Optimizer = optimiser) -> None:
                loss = p(images, targets)["loss"]
                o.zero_grad(set_to_none=True)
                loss.backward()
                o.step()

            steps[name] = step
        macs = {name: multiply_adds(step) for name, step in steps.items()}
        times = time_interleaved(steps, repeats, device=device)
        shares = _profile_shares(steps["downsizenet-3"], profile_steps, device)
        rows.append({
            "backbone": backbone, "batch": batch, **_against_bilinear(times),
            "arithmetic_floor": macs["downsizenet-3"] / macs["bilinear"],
            **{f"{group}_share": share for group, share in shares.items()},
        })  # fmt: skip
    return rows


def _profile_shares(step: Callable[[], None], steps: int, device: torch.device) -> dict[str, float]:
    """Share of a step's operator time (self time, summed over ``steps`` profiled steps) spent
    in each group of :data:`PROFILE_GROUPS`; empty when ``steps`` is 0."""
    if steps <= 0:
        return {}
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as profiler:
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize(device)
    events = profiler.key_averages()
    times = {
        event.key: event.self_device_time_total if cuda else event.self_cpu_time_total
        for event in events
    }
    whole = sum(times.values()) or 1.0
    return {
        group: sum(times.get(op, 0.0) for op in ops) / whole
        for group, ops in PROFILE_GROUPS.items()
    }


_MEMORY_CHILD = """
import sys, torch
from downsizenet_hub import DownsizeNet, allocator
from downsizenet_hub.resizing.fixed import FixedResizer

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

torch.set_num_threads(2)
name = sys.argv[1]
resizer = DownsizeNet().eval() if name == "downsizenet-3" else FixedResizer(name)
images = torch.rand(1, 3, 1024, 2048)
with torch.inference_mode():
    resizer(images[:, :, :64, :64], scale_factor=0.3)  # load kernels before the baseline reading
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak-RSS mark (VmHWM) to now
    before = status("VmRSS:")
    out = resizer(images, scale_factor=0.3)
    peak = status("VmHWM:")
io_bytes = (images.numel() + out.numel()) * 4
print(peak - before, io_bytes)
"""


def memory(allocator_choice: str, device: torch.device) -> list[dict[str, Any]]:
    """Peak memory growth during one call: on the CPU the RSS peak in a fresh process (Linux: VmHWM
    after clear_refs); on CUDA the allocator's peak above what was allocated before the call."""
    rows = []
    for name in ("bilinear", "downsizenet-3"):
        if device.type == "cuda":
            extra, io_bytes = _cuda_peak_extra(name, device)
        else:
            command = [sys.executable, "-c", _MEMORY_CHILD, name, allocator_choice]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            extra, io_bytes = (int(v) for v in out.stdout.split())
        rows.append({
            "resizer": name, "peak_extra_mb": extra / 2**20, "io_mb": io_bytes / 2**20,
            "ratio_to_io": extra / io_bytes,
        })  # fmt: skip
    return rows


def _cuda_peak_extra(name: str, device: torch.device) -> tuple[int, int]:
    resizer = DownsizeNet().eval() if name == "downsizenet-3" else FixedResizer(name)
    resizer.to(device)
    images = _rand(1, 1024, 2048, device=device)
    with torch.inference_mode():
        resizer(images[:, :, :64, :64], scale_factor=0.3)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        out = resizer(images, scale_factor=0.3)
        peak = torch.cuda.max_memory_allocated(device)
    return peak - before, (images.numel() + out.numel()) * 4


CACHE_CASES = {"300-x0.3": (300, 0.3), "513-179": (513, 0.35)}  # transfer's default; the paper's


def feature_cache(
    images: int, batch: int, epochs: int, device: torch.device
) -> list[dict[str, Any]]:
    """Seconds per transfer epoch (heads forward, backward, step) with and without the cache.

    The first epoch fills the cache; the median of the next ``epochs`` epochs is compared.
    """
    rows = []
    for case, (side, scale) in CACHE_CASES.items():
        torch.manual_seed(0)
        data = _rand(images, side, side, device=device)
        corners = [[0.07, 0.1, 0.27, 0.3], [0.5, 0.47, 0.67, 0.7]]
        boxes = torch.tensor(corners, device=device) * side
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(side, side)),
            "labels": torch.tensor([1, 2], device=device),
        }
        row: dict[str, Any] = {"case": case, "images": images, "batch": batch}
        for cached in (False, True):
            pipeline = DetectionPipeline(
                DownsizeNet().eval(), _trunk(), 11, scale_factor=scale, cache_features=cached
            )
            pipeline.to(device).train()
            trainable = [p for p in pipeline.parameters() if p.requires_grad]
            optimiser = torch.optim.SGD(trainable, lr=1e-3)

            first = _epoch(pipeline, optimiser, data, target, batch)
            later = [_epoch(pipeline, optimiser, data, target, batch) for _ in range(epochs)]
            row["cached" if cached else "uncached"] = {"first_s": first, "later_s": later}
        row["ratio_cached_to_uncached"] = median(row["cached"]["later_s"]) / median(
            row["uncached"]["later_s"]
        )
        rows.append(row)
    return rows


def _epoch(
    pipeline: DetectionPipeline,
    optimiser: torch.optim.Optimizer,
    data: torch.Tensor,
    target: dict[str, Any],
    batch: int,
) -> float:
    start = time.perf_counter()
    for i in range(0, len(data), batch):
        images = data[i : i + batch]
        loss = pipeline(images, [target] * len(images))["loss"]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    if data.is_cuda:
        torch.cuda.synchronize(data.device)
    return time.perf_counter() - start


def _child_inference(args: argparse.Namespace, allocator_choice: str) -> list[dict[str, Any]]:
    """The inference rows measured by a child process under ``allocator_choice``."""
    arguments = [
        "--only", "inference", "--allocator", allocator_choice, "--trunk", args.trunk,
        "--repeats", str(args.repeats), "--threads", str(args.threads), "--device", args.device,
        "--batches", *map(str, args.batches), *(["--compiled"] if args.compiled else []),
        "--cases", *args.cases, *(["--no-reuse"] if args.no_reuse else []),
    ]  # fmt: skip
    return list(run_child(__file__, arguments)["inference"])


def _median_of_runs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (allocator, case, batch) from the rows of several runs of the same cases.

    A ratio moves by up to 0.05 between two runs of the same code on this machine, more than
    within one run's rounds; the median of the runs' ratios is the figure to read. The quartiles
    are those of every round's ratio, pooled over the runs (each round paired within its run)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["allocator"], row["case"], row["batch"]), []).append(row)
    combined = []
    for runs in groups.values():
        times = {
            name: [t for run in runs for t in run["times_s"][name]] for name in runs[0]["times_s"]
        }
        row = {**runs[0], "runs": len(runs), "run_ratios": [run["ratio"] for run in runs]}
        for key in ("ratio", "bilinear_ms", "downsizenet_ms", "resizer_only_ms", "compiled_ratio",
                    "compiled_ms"):  # fmt: skip
            if key in row:
                row[key] = median([run[key] for run in runs])
        row["ratio_quartiles"] = list(
            paired_ratio_quartiles(times["downsizenet-3"], times["bilinear"])
        )
        if COMPILED in times:
            row["compiled_ratio_quartiles"] = list(
                paired_ratio_quartiles(times[COMPILED], times["bilinear"])
            )
        row["times_s"] = times
        combined.append(row)
    return combined


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--device", default="cpu", help="cpu, or cuda[:N]: then CUDA events time each call."
    )
    parser.add_argument("--train-backbones", nargs="+", default=["tiny", "resnet50"])
    add_allocator_option(parser, both=True)
    parser.add_argument(
        "--trunk", choices=TRUNKS, default="full",
        help="inference trunk: full (all of vgg16().features) or conv4_3 (the detector's).",
    )  # fmt: skip
    parser.add_argument(
        "--compiled", action="store_true",
        help="inference: also time DownsizeNet after resizer.compile() (torch.compile).",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--runs", type=int, default=1,
        help="inference: measure every case in this many fresh processes per allocator "
        "setting, alternating the settings, and report the median of their ratios.",
    )  # fmt: skip
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument(
        "--no-reuse", action="store_true",
        help="inference: the resizer allocates its temporaries afresh on every call "
        "(reuse_temporaries=False), to measure what its workspace saves.",
    )  # fmt: skip
    parser.add_argument(
        "--profile-steps", type=int, default=3,
        help="training: profile this many DownsizeNet steps for the share of the gathers and "
        "the mix (0: no profile).",
    )  # fmt: skip
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--cache-images", type=int, default=32)
    parser.add_argument("--cache-epochs", type=int, default=3)
    parser.add_argument(
        "--only", nargs="+", default=["inference", "training", "memory", "feature_cache"]
    )
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/pipeline_overhead.json")
    )
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    single = "kept" if args.allocator == "both" else args.allocator
    in_children = args.allocator == "both" or args.runs > 1
    if in_children and "inference" in args.only:
        # glibc's thresholds are process-wide: each setting measured in a fresh child process.
        choices = ("default", "kept") if args.allocator == "both" else (single,)
        for _ in range(args.runs):
            for choice in choices:
                rows += _child_inference(args, choice)
        if args.runs > 1:
            rows = _median_of_runs(rows)
    apply_allocator(single)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    payload: dict[str, Any] = {
        "machine": machine_info(),
        "device": str(device),
        "repeats": args.repeats,
        "trunk": args.trunk,
        "reuse_temporaries": not args.no_reuse,
        "runs": args.runs,
    }
    if "inference" in args.only:
        if not in_children:
            rows = [
                {"allocator": single, **r}
                for r in inference(
                    args.repeats,
                    args.batches,
                    device,
                    args.trunk,
                    args.compiled,
                    args.cases,
                    reuse=not args.no_reuse,
                )
            ]
        payload["inference"] = rows
        print_table(
            f"Resizer + frozen VGG16 ({args.trunk}) vs bilinear + the same trunk (median ms)",
            ["allocator", "case", "batch", "bilinear", "downsizenet-3", "resizer alone",
             "ratio", "ratio IQR", "floor", "each run's ratio"],
            [[r["allocator"], r["case"], r["batch"], r["bilinear_ms"], r["downsizenet_ms"],
              r["resizer_only_ms"], r["ratio"], "{:.3f}-{:.3f}".format(*r["ratio_quartiles"]),
              r["arithmetic_floor"], " ".join(f"{v:.3f}" for v in r.get("run_ratios", []))]
             for r in rows],
        )  # fmt: skip
        if args.compiled:
            print_table(
                "The same with resizer.compile() (median ms; compile time outside the rounds)",
                ["allocator", "case", "batch", "compiled", "ratio", "ratio IQR", "eager ratio",
                 "compile s", "max |compiled - eager|"],
                [[r["allocator"], r["case"], r["batch"], r["compiled_ms"], r["compiled_ratio"],
                  "{:.3f}-{:.3f}".format(*r["compiled_ratio_quartiles"]), r["ratio"],
                  r["compile_s"], f"{r['compiled_max_abs_diff']:.1e}"] for r in rows],
            )  # fmt: skip
    if "training" in args.only:
        payload["training"] = t = training(
            args.repeats, args.train_batch, args.train_backbones, device, args.profile_steps
        )
        print_table(
            "pretrain step (fwd + bwd + AdamW), 300 px -> x0.3 segmentation (median ms; shares "
            "of the DownsizeNet step's operator time, profiled)",
            ["backbone", "batch", "bilinear", "downsizenet-3", "ratio", "ratio IQR", "floor",
             "gathers", "mix"],
            [[r["backbone"], r["batch"], r["bilinear_ms"], r["downsizenet_ms"], r["ratio"],
              "{:.3f}-{:.3f}".format(*r["ratio_quartiles"]), r["arithmetic_floor"],
              r.get("gathers_share", "-"), r.get("mix_share", "-")] for r in t],
        )  # fmt: skip
    if "memory" in args.only:
        payload["memory"] = m = memory(single, device)
        print_table(
            "Peak extra memory, 1x3x1024x2048 -> x0.3 (inference)",
            ["resizer", "peak extra MB", "input+output MB", "ratio"],
            [[r["resizer"], r["peak_extra_mb"], r["io_mb"], r["ratio_to_io"]] for r in m],
        )
    if "feature_cache" in args.only:
        payload["feature_cache"] = c = feature_cache(
            args.cache_images, 8, args.cache_epochs, device
        )
        print_table(
            "Transfer epoch with and without the frozen-front cache (s; later: median)",
            ["case", "uncached 1st", "uncached later", "cached 1st", "cached later", "ratio"],
            [[r["case"], r["uncached"]["first_s"], median(r["uncached"]["later_s"]),
              r["cached"]["first_s"], median(r["cached"]["later_s"]),
              r["ratio_cached_to_uncached"]] for r in c],
        )  # fmt: skip
    write_results(args.out, payload)
    print(json.dumps({"wrote": str(args.out)}))


if __name__ == "__main__":
    main()
