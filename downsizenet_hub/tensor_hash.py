"""SHA-256 fingerprints of tensors: what a cache key or a resume check compares weights by."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch
from torch import nn


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over named tensors (names, dtypes, shapes and bytes), in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(tensors.items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)}".encode())
        # Flattened first: a 0-d tensor (batch norm's num_batches_tracked) cannot be viewed as
        # bytes of another size; the bytes, and so every digest, are those of the tensor itself.
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def module_sha256(module: nn.Module) -> str:
    """SHA-256 over a module's state dict."""
    return tensors_sha256(module.state_dict())
