"""Shared by the benchmark scripts: interleaved timing, medians, machine facts, JSON + table out."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from downsizenet_hub import allocator
from downsizenet_hub.atomic import write_atomic

_allocator_state: str = "not set by the benchmark"


def add_allocator_option(parser: argparse.ArgumentParser, *, both: bool = False) -> None:
    """``--allocator``; with ``both``, the script can also measure each setting in a child
    process (glibc's thresholds are process-wide and cannot be reset once changed)."""
    parser.add_argument(
        "--allocator",
        choices=["kept", "default", "both"] if both else ["kept", "default"],
        default="both" if both else "kept",
        help="kept: freed memory stays in the process, as in the downsizenet command "
        "(downsizenet_hub.allocator); default: glibc's defaults, as for a library user"
        + ("; both: each in its own process, in one run." if both else "."),
    )


def apply_allocator(choice: str) -> None:
    """Apply ``--allocator`` before any tensor is made; :func:`machine_info` records it."""
    global _allocator_state
    state = allocator.keep_freed_memory() if choice == "kept" else "default"
    _allocator_state = allocator.describe(state)


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on, including the allocator settings (they matter here)."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "allocator": _allocator_state,
        "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES", ""),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", ""),
    }


def time_interleaved(
    candidates: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    device: torch.device | str = "cpu",
) -> dict[str, list[float]]:
    """Run each candidate ``repeats`` times, round-robin, after ``warmup`` rounds; seconds per call.

    Interleaving spreads drift (thermal, other processes) evenly over the candidates, so that
    ratios from the same run are fair. On a CUDA ``device`` each call is timed with CUDA events
    (GPU time between two points of the stream), synchronising once per call.
    """
    cuda = torch.device(device).type == "cuda"
    for _ in range(warmup):
        for run in candidates.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, run in candidates.items():
            if cuda:
                begin, end = (
                    torch.cuda.Event(enable_timing=True),
                    torch.cuda.Event(enable_timing=True),
                )
                torch.cuda.synchronize()
                begin.record()
                run()
                end.record()
                end.synchronize()
                times[name].append(begin.elapsed_time(end) / 1000)
            else:
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    return times


def multiply_adds(run: Callable[[], Any]) -> float:
    """Multiply-adds of one call of ``run``: the convolutions and matrix products PyTorch's
    ``FlopCounterMode`` sees (forward, and backward when ``run`` calls it), FLOPs / 2."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops() / 2


def median(values: list[float]) -> float:
    return statistics.median(values)


def paired_ratio_quartiles(times: list[float], base: list[float]) -> tuple[float, float]:
    """25th and 75th percentiles of the per-round ratios ``times[i] / base[i]`` (same round)."""
    ratios = [t / b for t, b in zip(times, base, strict=True)]
    if len(ratios) < 2:
        return ratios[0], ratios[0]
    quartiles = statistics.quantiles(ratios, n=4, method="inclusive")
    return quartiles[0], quartiles[2]


def run_child(script: str, arguments: list[str]) -> dict[str, Any]:
    """Run ``script`` with ``arguments`` in a fresh process and return the JSON it wrote to its
    ``--out`` (glibc's malloc thresholds are process-wide: each setting needs its own process).
    The child's own output goes to stderr."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "child.json"
        command = [sys.executable, script, *arguments, "--out", str(out)]
        subprocess.run(command, check=True, stdout=sys.stderr)
        payload: dict[str, Any] = json.loads(out.read_text())
        return payload


def write_results(path: Path, payload: dict[str, Any]) -> None:
    text = json.dumps(payload, indent=2) + "\n"
    write_atomic(path, lambda handle: handle.write(text.encode()))


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    Console(width=160).print(table)
