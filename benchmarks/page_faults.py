"""Page faults per DownsizeNet call inside a pipeline, in several fresh processes (issue 19).

glibc's default malloc adapts its thresholds to what the process has freed so far, so whether the
resizer's large temporaries stay in the process between calls or go back to the OS (and are
page-faulted in again on the next call) depends on the process's allocation history. One
process therefore says little: this script starts ``--processes`` fresh ones per allocator
setting, and each runs the pipeline of ``pipeline_overhead.py`` (bilinear + VGG16 trunk, then
DownsizeNet + the same trunk, alternating) and reports, for the resizer's calls alone, the median
time and the median number of minor page faults (``getrusage``'s ``ru_minflt``; Linux and other
Unix systems).

    python benchmarks/page_faults.py --out benchmarks/results/page_faults.json

``--no-reuse`` turns off the resizer's workspace (``reuse_temporaries=False``: every call
allocates its temporaries afresh, as before issue 28), for a before/after on one checkout;
``--cases 513-179`` measures one case. A smoke run: ``--processes 1 --calls 1 --warmup 1
--batches 1 --cases 300-160 --trunk conv4_3``. Page faults are a CPU matter: there is no
``--device``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _common import (
    apply_allocator,
    machine_info,
    median,
    print_table,
    run_child,
    write_results,
)
from pipeline_overhead import CASES, TRUNKS, _trunk

from downsizenet_hub import DownsizeNet

ALLOCATORS = ("default", "kept")


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(
    calls: int,
    warmup: int,
    trunk_name: str,
    batches: list[int],
    cases: list[str] | None = None,
    reuse: bool = True,
) -> list[dict[str, Any]]:
    """In this process: per case and batch, the resizer's median time and faults per call."""
    trunk = _trunk(trunk_name).to(memory_format=torch.channels_last)
    resizer = DownsizeNet().eval()
    resizer.reuse_temporaries = reuse
    rows = []
    for case, (in_size, out_size) in CASES.items():
        if cases is not None and case not in cases:
            continue
        for batch in batches:
            images = torch.rand(batch, 3, *in_size).contiguous(memory_format=torch.channels_last)
            seconds, faults = [], []
            with torch.no_grad():
                for call in range(warmup + calls):
                    trunk(F.interpolate(images, size=out_size, mode="bilinear"))
                    before, start = _minor_faults(), time.perf_counter()
                    small = resizer(images, size=out_size)
                    stop, after = time.perf_counter(), _minor_faults()
                    trunk(small)
                    if call >= warmup:
                        seconds.append(stop - start)
                        faults.append(after - before)
            rows.append({
                "case": case, "batch": batch, "resizer_ms": 1000 * median(seconds),
                "faults_per_call": statistics.median_low(faults), "faults_max": max(faults),
            })  # fmt: skip
    return rows


def _child(args: argparse.Namespace, allocator: str) -> list[dict[str, Any]]:
    arguments = [
        "--child", allocator, "--calls", str(args.calls), "--warmup", str(args.warmup),
        "--trunk", args.trunk, "--threads", str(args.threads), "--batches", *map(str, args.batches),
        "--cases", *args.cases, *(["--no-reuse"] if args.no_reuse else []),
    ]  # fmt: skip
    return list(run_child(__file__, arguments)["rows"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=5, help="fresh processes per setting")
    parser.add_argument("--calls", type=int, default=16, help="timed resizer calls per case")
    parser.add_argument("--warmup", type=int, default=4, help="untimed calls before them")
    parser.add_argument("--trunk", choices=TRUNKS, default="full")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument(
        "--no-reuse",
        action="store_true",
        help="the resizer allocates its temporaries afresh on every call (no workspace).",
    )
    parser.add_argument("--child", choices=ALLOCATORS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/page_faults.json"))
    args = parser.parse_args()
    if args.child:
        apply_allocator(args.child)
        torch.set_num_threads(args.threads)
        rows = measure(
            args.calls, args.warmup, args.trunk, args.batches, args.cases, not args.no_reuse
        )
        write_results(args.out, {"machine": machine_info(), "rows": rows})
        return
    rows = []
    for process in range(args.processes):
        for allocator in ALLOCATORS:  # alternated, so that drift spreads over both settings
            rows += [
                {"allocator": allocator, "process": process, **row}
                for row in _child(args, allocator)
            ]
    write_results(
        args.out,
        {"machine": {**machine_info(), "allocator": "per row"}, "trunk": args.trunk,
         "calls": args.calls, "warmup": args.warmup, "reuse_temporaries": not args.no_reuse,
         "rows": rows},
    )  # fmt: skip
    rows.sort(key=lambda r: (r["case"], r["batch"], r["allocator"], r["process"]))
    print_table(
        f"DownsizeNet calls between VGG16 ({args.trunk}) calls: median per process",
        ["case", "batch", "allocator", "process", "resizer ms", "faults/call", "max faults"],
        [[r["case"], r["batch"], r["allocator"], r["process"], r["resizer_ms"],
          r["faults_per_call"], r["faults_max"]] for r in rows],
    )  # fmt: skip
    print(json.dumps({"wrote": str(args.out)}))


if __name__ == "__main__":
    main()
