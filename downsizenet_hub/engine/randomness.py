"""Where training randomness comes from, so that a resumed run draws exactly what an
uninterrupted one would.

At the start of every epoch the global generators (Python ``random``, NumPy's legacy global
generator, torch CPU and CUDA) are reseeded from ``(seed, epoch, rank)`` through NumPy's
``SeedSequence``; the DataLoader gets its own generator from the same sequence (it seeds the
workers). An epoch therefore starts from a state that depends on nothing that happened before,
and an epoch-boundary checkpoint needs no RNG state. A mid-epoch checkpoint stores the states
captured after its last step (:func:`capture_rng`), as tensors and primitives only, so that
``torch.load(weights_only=True)`` reads them back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class EpochSeeds:
    """Seeds for one (seed, epoch, rank): the global generators and the DataLoader's."""

    python: int
    numpy: int
    torch: int
    loader: int


def epoch_seeds(seed: int, epoch: int, rank: int) -> EpochSeeds:
    """Well-mixed, independent seeds for 0-based ``epoch`` on process ``rank``."""
    words = np.random.SeedSequence([seed, epoch, rank]).generate_state(7, dtype=np.uint32)
    as_int = [int(w) for w in words]
    return EpochSeeds(
        python=(as_int[0] << 32) | as_int[1],
        numpy=as_int[2],
        # torch seeds are 64-bit; keep them below 2**63 so they also fit a signed int64.
        torch=((as_int[3] & 0x7FFFFFFF) << 32) | as_int[4],
        loader=((as_int[5] & 0x7FFFFFFF) << 32) | as_int[6],
    )


def seed_everything(seeds: EpochSeeds) -> None:
    """Reseed Python, NumPy (global) and torch (CPU and every CUDA device)."""
    random.seed(seeds.python)
    np.random.seed(seeds.numpy)
    torch.manual_seed(seeds.torch)  # also seeds all CUDA devices


def loader_generator(seeds: EpochSeeds) -> torch.Generator:
    """The DataLoader's generator: its draw seeds the workers, without touching global state."""
    return torch.Generator().manual_seed(seeds.loader)


def capture_rng() -> dict[str, Any]:
    """This process's generator states as tensors and primitives (``weights_only``-loadable)."""
    py_version, py_internal, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    return {
        "python": {
            "version": int(py_version),
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
        "numpy": {
            "kind": str(np_kind),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
        # Only the current device: each process trains on one GPU.
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`; the CUDA state goes to the current device, if any."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"].tolist()), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["kind"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
