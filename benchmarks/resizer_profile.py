"""Where an inference call of DownsizeNet spends its time, beside the trunk it feeds (issue 28).

For each case and batch: bilinear + the whole ``vgg16().features`` trunk and the resizer alone,
timed interleaved (medians of ``--repeats`` rounds, as ``pipeline_overhead.py`` times them); then
a profile of ``--calls`` resizer calls, its operator time (self time) grouped into the texture
convolutions (the compiled anchor conv of ``resizing/native.py`` among them), the gathers
(``index_select``, the mix's weighted ``embedding_bag`` or its compiled kernel: a gather and a
sum in one), the matrix products (the head's; the mix's where it is not a bag), and every
other operator (the normalisation, copies, small ops); what the wall time has beyond the
operators is Python and allocation.

The *convolutions-only ratio*, ``1 + convolutions / (bilinear + trunk)``, is what DownsizeNet +
trunk would cost over bilinear + trunk if the gathers, the head, the normalisation and the mix
were free: the best a fused gather-and-mix kernel can reach while the convolutions stay oneDNN's.

    .venv/bin/python benchmarks/resizer_profile.py --out benchmarks/results/resizer_profile.json
"""

from __future__ import annotations

import argparse
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
from pipeline_overhead import CASES, _forward, _macs, _rand, _trunk
from torch.profiler import ProfilerActivity, profile

from downsizenet_hub import DownsizeNet
from downsizenet_hub.resizing import native
from downsizenet_hub.resizing.fixed import FixedResizer

#: Operator groups of an inference call (self CPU time); anything else is "other".
GROUPS: dict[str, tuple[str, ...]] = {
    "convolutions": (
        "mkldnn::_convolution_pointwise",
        "aten::mkldnn_convolution",
        native.ANCHOR_CONV_LABEL,
    ),
    "gathers": (
        native.MIX_LABEL,
        "aten::index_select",
        "aten::embedding_bag",
        "aten::_embedding_bag",
        "aten::_embedding_bag_forward_only",
    ),
    "matmuls": ("aten::mm", "aten::bmm", "aten::addmm"),
}


def profile_case(
    case: str, batch: int, repeats: int, calls: int, trunk: torch.nn.Module
) -> dict[str, Any]:
    in_size, out_size = CASES[case]
    cpu = torch.device("cpu")
    # Counted first, on a fresh module: the timed one caches inference-mode geometry.
    macs = _macs(DownsizeNet().eval(), _rand(1, *in_size, device=cpu), out_size) * batch
    trunk_macs = _macs(trunk, _rand(1, *out_size, device=cpu)) * batch
    resizer = DownsizeNet().eval()
    images = _rand(batch, *in_size, device=cpu)
    runs = {
        "bilinear": _forward(trunk, FixedResizer("bilinear"), images, out_size),
        "resizer": _forward(None, resizer, images, out_size),
    }
    times = time_interleaved(runs, repeats)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(calls):
            runs["resizer"]()
    self_ms = {e.key: e.self_cpu_time_total / 1000 / calls for e in profiler.key_averages()}
    groups = {g: sum(self_ms.get(op, 0.0) for op in ops) for g, ops in GROUPS.items()}
    grouped = {op for ops in GROUPS.values() for op in ops}
    groups["other"] = sum(ms for op, ms in self_ms.items() if op not in grouped)
    resizer_ms = 1000 * median(times["resizer"])
    base_ms = 1000 * median(times["bilinear"])
    return {
        "case": case,
        "batch": batch,
        "bilinear_trunk_ms": base_ms,
        "resizer_ms": resizer_ms,
        "groups_ms": groups,
        "outside_operators_ms": resizer_ms - sum(groups.values()),
        "resizer_gmac": macs / 1e9,
        "convolutions_gmac_per_s": macs / 1e6 / groups["convolutions"],
        "trunk_gmac_per_s": trunk_macs / 1e6 / base_ms,
        "ratio_now": 1 + resizer_ms / base_ms,
        "convolutions_only_ratio": 1 + groups["convolutions"] / base_ms,
        "arithmetic_floor": 1 + macs / trunk_macs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    add_allocator_option(parser)
    parser.add_argument("--repeats", type=int, default=11, help="timed rounds (default 11)")
    parser.add_argument("--calls", type=int, default=5, help="profiled resizer calls")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    apply_allocator(args.allocator)
    torch.set_num_threads(args.threads)
    trunk = _trunk("full")
    rows = [
        profile_case(case, batch, args.repeats, args.calls, trunk)
        for case in args.cases
        for batch in args.batches
    ]
    print_table(
        "DownsizeNet inference call: ms per call (resizer alone), and its ratio to bilinear + "
        "vgg16().features",
        ["case", "batch", "resizer", "convs", "gathers", "matmuls", "other", "outside ops",
         "conv GMAC/s", "trunk GMAC/s", "ratio", "convs-only ratio", "floor"],
        [[r["case"], r["batch"], f"{r['resizer_ms']:.1f}",
          *(f"{r['groups_ms'][g]:.1f}" for g in ("convolutions", "gathers", "matmuls", "other")),
          f"{r['outside_operators_ms']:.1f}", f"{r['convolutions_gmac_per_s']:.0f}",
          f"{r['trunk_gmac_per_s']:.0f}", f"{r['ratio_now']:.3f}",
          f"{r['convolutions_only_ratio']:.3f}", f"{r['arithmetic_floor']:.3f}"] for r in rows],
    )  # fmt: skip
    if args.out is not None:
        write_results(args.out, {"machine": machine_info(), "repeats": args.repeats,
                                 "calls": args.calls, "rows": rows})  # fmt: skip


if __name__ == "__main__":
    main()
