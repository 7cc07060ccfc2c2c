"""Which device a run uses, whether it uses mixed precision, and deterministic kernels."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from downsizenet_hub.engine.config import AmpMode
from downsizenet_hub.engine.distributed import DistInfo


def resolve_device(requested: str, dist_info: DistInfo) -> torch.device:
    """``"auto"``: ``cuda:LOCAL_RANK`` when CUDA is available, else CPU; ``"cuda"``: the same GPU,
    required; ``"cuda:N"`` / ``"cpu"``: as given."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ValueError(
            f"TrainConfig.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {requested!r}."
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"TrainConfig.device is {requested!r} but CUDA is not available.")
        index = dist_info.local_rank if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"TrainConfig.device asks for GPU {index}; this machine has "
                f"{torch.cuda.device_count()}."
            )
        return torch.device("cuda", index)
    if device.type != "cpu":
        raise ValueError(f"TrainConfig.device must be a CPU or CUDA device, got {requested!r}.")
    return device


def resolve_amp(mode: AmpMode, device: torch.device) -> bool:
    """Whether to train with float16 autocast and a GradScaler."""
    if mode == "on" and device.type != "cuda":
        raise ValueError(f"TrainConfig.amp='on' needs a CUDA device; the run uses {device}.")
    return mode == "on" or (mode == "auto" and device.type == "cuda")


@contextlib.contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """Deterministic algorithms (warn-only: ops without one still run) and cuDNN for the block."""
    if not enabled:
        yield
        return
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    # cuBLAS needs this before its first call to be deterministic (PyTorch's reproducibility notes).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic = previous[2]
        torch.backends.cudnn.benchmark = previous[3]
