"""Resizer speed: DownsizeNet (2, 3, 4 conv layers) against F.interpolate, ratios to bilinear.

Measures forward and forward+backward, batch 1 and 8, at the paper's sizes, interleaved in one
process; prints a table and writes JSON.

    python benchmarks/resizer_speed.py --threads 2 --out benchmarks/results/resizer_speed.json
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import (
    add_allocator_option,
    apply_allocator,
    machine_info,
    median,
    print_table,
    time_interleaved,
    write_results,
)

from downsizenet_hub import DownsizeNet
from downsizenet_hub.resizing.fixed import FixedResizer

CASES: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {
    "300-160": ((300, 300), {"size": (160, 160)}),
    "513-179": ((513, 513), {"size": (179, 179)}),
    "1024x2048-x0.3": ((1024, 2048), {"scale_factor": 0.3}),
}


def _runner(
    resizer: torch.nn.Module, images: torch.Tensor, kwargs: dict[str, Any], backward: bool
) -> Callable[[], None]:
    def forward() -> None:
        with torch.no_grad():
            resizer(images, **kwargs)

    def forward_backward() -> None:
        x = images.detach().requires_grad_()
        resizer.zero_grad(set_to_none=True)
        resizer(x, **kwargs).sum().backward()

    return forward_backward if backward else forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/resizer_speed.json"))
    add_allocator_option(parser)
    args = parser.parse_args()
    apply_allocator(args.allocator)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)

    resizers: dict[str, torch.nn.Module] = {
        "bilinear": FixedResizer("bilinear"),
        "antialias": FixedResizer("antialias"),
        "bicubic": FixedResizer("bicubic"),
        "area": FixedResizer("area"),
        **{f"downsizenet-{n}": DownsizeNet(conv_layers=n) for n in (2, 3, 4)},
    }
    for module in resizers.values():
        module.to(device)
    rows: list[list[Any]] = []
    records: list[dict[str, Any]] = []
    for case in args.cases:
        in_size, kwargs = CASES[case]
        for batch in args.batches:
            images = torch.rand(batch, 3, *in_size, device=device)
            for backward in (False, True):
                mode = "fwd+bwd" if backward else "fwd"
                runs = {name: _runner(r, images, kwargs, backward) for name, r in resizers.items()}
                times = time_interleaved(runs, args.repeats, device=device)
                base = median(times["bilinear"])
                for name, values in times.items():
                    ms = 1000 * median(values)
                    ratio = median(values) / base
                    rows.append([case, batch, mode, name, ms, ratio])
                    records.append({
                        "case": case, "batch": batch, "mode": mode, "resizer": name,
                        "median_ms": ms, "ratio_to_bilinear": ratio,
                        "times_s": values,
                    })  # fmt: skip
    print_table(
        "Resizer speed (median ms; ratio to F.interpolate bilinear, same run)",
        ["case", "batch", "mode", "resizer", "median ms", "x bilinear"],
        rows,
    )
    payload = {"machine": machine_info(), "repeats": args.repeats, "results": records}
    write_results(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
