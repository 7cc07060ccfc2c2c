"""Process-group helpers for runs under ``torchrun`` (one process per GPU, or gloo on CPU).

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_from_env` reads them (``env://``) and joins the group. Without them, or with a world of
one, everything here describes a single process and no group is created. Commands use
:func:`is_main_process` to let only rank 0 write or publish.

Teardown: :func:`init_from_env` registers :func:`cleanup` to run at exit, while the interpreter is
still whole. That matters with gloo. ``destroy_process_group()`` only drops the registry's
references; the group and its worker threads live on while anything else holds it (a
DistributedDataParallel wrapper does, and a reference cycle can keep one alive past the end of
training). A worker thread that later drops the last reference to a tensor created in Python must
take the GIL to free it; if the interpreter is finalising by then, Python ends that thread
(``pthread_exit``) and the forced unwind through C++ code ends in ``std::terminate``: "terminate
called without an active exception", SIGABRT, seen under CPU load where the workers lag. So
:func:`cleanup` destroys the group and then collects garbage, so that the group's destructor runs
and joins its workers before finalisation (a reference cycle can hold a finished DDP wrapper;
one import done early, see :func:`_join`, keeps torch from holding the group itself).
"""

from __future__ import annotations

import atexit
import gc
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` in ``[0, world_size)``, ``local_rank`` on its machine."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"Environment variable {name} must be an integer, got {raw!r}.") from None


def is_distributed() -> bool:
    """True once a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0) if is_distributed() else 0


def is_main_process() -> bool:
    """True on rank 0 and in single-process runs: the one process that writes files."""
    return rank() == 0


def info() -> DistInfo:
    return DistInfo(rank=rank(), world_size=world_size(), local_rank=local_rank())


def init_from_env() -> DistInfo:
    """Join the ``torchrun`` process group described by the environment, once; idempotent.

    Backend: gloo for CPU tensors and, when CUDA is available, NCCL for CUDA tensors (the
    ``"cpu:gloo,cuda:nccl"`` form), after pinning this process to GPU ``LOCAL_RANK``.
    """
    if dist.is_available() and dist.is_initialized():
        return info()
    size = _env_int("WORLD_SIZE", 1)
    if size <= 1:
        return DistInfo(rank=0, world_size=1, local_rank=0)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed.")
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ValueError(
            f"WORLD_SIZE={size} but {', '.join(missing)} is not set: launch with torchrun."
        )
    if torch.cuda.is_available():
        torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    _join(backend)
    return info()


def _join(backend: str) -> None:
    """``init_process_group(backend, env://)``, set up so that :func:`cleanup` can free it."""
    # Imported before the group exists: importing torch._dynamo afterwards (DDP does, when it is
    # built) keeps a reference to the group for the life of the process (torch 2.14), so the
    # group and its gloo worker threads would survive cleanup() until the interpreter finalises.
    import torch._dynamo  # noqa: F401

    dist.init_process_group(backend=backend, init_method="env://")
    atexit.register(cleanup)  # runs before the interpreter finalises; see the module docstring


def cleanup() -> None:
    """Leave the process group and free it, joining its worker threads (idempotent).

    Runs at exit after :func:`init_from_env`; call it earlier to leave the group sooner. Every
    rank must be done with its collectives (as at the end of a command).
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        # Whatever still holds the group only through a reference cycle (a DDP wrapper inside
        # a finished trainer) goes now, so the group's destructor joins its gloo workers here.
        gc.collect()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over processes, in place; returns it. A no-op in a single process."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` (picklable), ordered by rank; ``[obj]`` in a single process."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
