"""Resizer cost: parameters and multiply-adds per image of the classical, DownsizeNet and learned
baseline resizers (issue 20), at the study's scales.

Multiply-adds are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one image (MACs =
flops / 2). It counts convolutions and matrix products; interpolation, pooling, batch norm and
activations are not counted (a few operations per value), so bilinear and area show 0. The count
runs with autograd on (forward only): without it DownsizeNet's texture branch uses a fused oneDNN
convolution + ReLU kernel that the counter does not see, and the script checks DownsizeNet's
counted convolutions against the closed form so that a hidden kernel cannot pass unnoticed.
Counts are exact and machine-independent; the run takes a few seconds.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/resizer_cost.py \\
        --out benchmarks/results/resizer_cost.json
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _common import machine_info, print_table, write_results
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from downsizenet_hub import DownsizeNet
from downsizenet_hub.resizing.anchors import anchors_pay
from downsizenet_hub.resizing.strided import StridedResizer
from downsizenet_hub.resizing.talebi import TalebiResizer

#: Case name -> (input height and width, resize arguments).
CASES: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {
    "513 x0.3": ((513, 513), {"scale_factor": 0.3}),
    "513 x0.5": ((513, 513), {"scale_factor": 0.5}),
    "300->160": ((300, 300), {"size": (160, 160)}),
}


class _Interpolate(nn.Module):
    """``F.interpolate`` behind the resizer call signature (no parameters)."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, images: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        extra = {"align_corners": False} if self.mode == "bilinear" else {}
        return F.interpolate(images, mode=self.mode, **kwargs, **extra)


#: Resizer name -> (builder, the cases it applies to).
RESIZERS: dict[str, tuple[Callable[[], nn.Module], tuple[str, ...]]] = {
    "bilinear": (lambda: _Interpolate("bilinear"), tuple(CASES)),
    "area": (lambda: _Interpolate("area"), tuple(CASES)),
    "downsizenet": (DownsizeNet, tuple(CASES)),
    "downsizenet antialias": (lambda: DownsizeNet(neighbourhood="antialias"), tuple(CASES)),
    "talebi r=1": (lambda: TalebiResizer(residual_blocks=1), tuple(CASES)),
    "talebi r=2": (lambda: TalebiResizer(residual_blocks=2), tuple(CASES)),
    "strided k=2": (lambda: StridedResizer(k=2), ("513 x0.5",)),
}


def count_macs(
    resizer: nn.Module, in_size: tuple[int, int], kwargs: dict[str, Any]
) -> tuple[int, int, tuple[int, int]]:
    """Total and convolution multiply-adds of one 3-channel image, and the output size."""
    images = torch.rand(1, 3, *in_size)
    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
        out = resizer(images, **kwargs)
    convolution = sum(
        flops
        for op, flops in counter.get_flop_counts().get("Global", {}).items()
        if "convolution" in str(op)
    )
    return counter.get_total_flops() // 2, convolution // 2, (out.shape[-2], out.shape[-1])


def _check_downsizenet(
    net: DownsizeNet, in_size: tuple[int, int], out_size: tuple[int, int], conv_macs: int
) -> None:
    """The texture branch's convolutions in closed form: all layers at full resolution, except the
    last one at the output's anchors only where :func:`anchors_pay` says the module does that."""
    c = net.config
    first = c.in_channels * c.channels * 9
    hidden = c.channels**2 * 9
    full = in_size[0] * in_size[1]
    per_layer = [first] + [hidden] * (c.conv_layers - 1)
    if per_layer and anchors_pay(in_size, out_size):
        expected = sum(per_layer[:-1]) * full + per_layer[-1] * out_size[0] * out_size[1]
    else:
        expected = sum(per_layer) * full
    if conv_macs != expected:
        raise RuntimeError(
            f"FlopCounterMode saw {conv_macs} convolution MACs in DownsizeNet, expected {expected}."
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/resizer_cost.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    rows: list[dict[str, Any]] = []
    for name, (build, cases) in RESIZERS.items():
        resizer = build().eval()
        parameters = sum(p.numel() for p in resizer.parameters())
        for case in cases:
            in_size, kwargs = CASES[case]
            macs, conv_macs, out_size = count_macs(resizer, in_size, kwargs)
            if isinstance(resizer, DownsizeNet):
                _check_downsizenet(resizer, in_size, out_size, conv_macs)
            rows.append(
                {
                    "resizer": name,
                    "case": case,
                    "input": list(in_size),
                    "output": list(out_size),
                    "parameters": parameters,
                    "macs": macs,
                    "macs_per_output_pixel": macs / (out_size[0] * out_size[1]),
                }
            )
    print_table(
        "Resizer cost per image (3 channels; MACs counted by FlopCounterMode)",
        ["resizer", "case", "output", "parameters", "MMACs", "MACs / output pixel"],
        [
            [
                r["resizer"],
                r["case"],
                "x".join(map(str, r["output"])),
                r["parameters"],
                r["macs"] / 1e6,
                round(r["macs_per_output_pixel"]),
            ]
            for r in rows
        ],
    )
    write_results(
        args.out,
        {
            "machine": machine_info(),
            "counted": "convolutions and matrix products (torch.utils.flop_counter), batch 1, "
            "MACs = flops / 2; interpolation, pooling, batch norm and activations not counted",
            "cases": {name: {"input": list(s), **kw} for name, (s, kw) in CASES.items()},
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
