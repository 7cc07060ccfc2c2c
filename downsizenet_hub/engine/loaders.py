"""DataLoaders whose order depends only on (seed, epoch, rank), and batch plumbing.

Training order comes from :class:`~torch.utils.data.DistributedSampler` in every run (with one
replica in a single process): its permutation is ``randperm`` under a generator seeded with
``seed + epoch``, split across ranks. A mid-epoch resume skips the indices already consumed, so the
remaining batches are exactly those an uninterrupted run would see. Evaluation shards the data
without padding (rank ``r`` takes items ``r, r + W, ...``), so no image is counted twice when
the metric's states are summed across processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

Collate = Callable[[list[Any]], tuple[Any, list[dict[str, Any]]]]


def collate_pairs(batch: list[Any]) -> tuple[Tensor, list[dict[str, Any]]]:
    """Default collate: ``(image (C, H, W), target dict)`` items to ``(images (B, C, H, W),
    [target dicts])``.

    Images must share one size; pass ``collate_fn`` to :func:`fit` for anything else.
    """
    images: list[Tensor] = []
    targets: list[dict[str, Any]] = []
    for item in batch:
        if not (isinstance(item, Sequence) and len(item) == 2 and isinstance(item[1], dict)):
            raise TypeError(
                "Dataset items must be (image tensor, target dict) pairs for the default collate; "
                f"got {type(item).__name__}. Pass collate_fn= for other layouts."
            )
        images.append(item[0])
        targets.append(item[1])
    return torch.stack(images), targets


def move_to_device(value: Any, device: torch.device) -> Any:
    """Tensors in (nested) lists, tuples and dicts moved to ``device``; anything else unchanged."""
    if isinstance(value, Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {key: move_to_device(item, device) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(move_to_device(item, device) for item in value)
    return value


def dataset_size(dataset: Dataset[Any]) -> int:
    """``len(dataset)``; the engine needs map-style datasets (indexable, with a length)."""
    try:
        return len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"The engine needs map-style datasets with a length; {type(dataset).__name__} has none."
        ) from None


def steps_per_epoch(dataset_size: int, batch_size: int, world_size: int) -> int:
    """Full batches per process per epoch (the sampler pads each rank to ``ceil(N / W)`` items)."""
    per_rank = -(-dataset_size // world_size)
    return per_rank // batch_size


class _Indices(Sampler[int]):
    """A fixed list of indices, in order."""

    def __init__(self, indices: list[int]) -> None:
        self.indices = indices

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def train_indices(
    dataset_size: int, *, seed: int, epoch: int, rank: int, world_size: int
) -> list[int]:
    """This rank's training order for 0-based ``epoch``: a function of (seed, epoch, rank) only."""
    sampler: DistributedSampler[int] = DistributedSampler(
        cast(Dataset[int], range(dataset_size)),  # only its len() is used
        num_replicas=world_size,
        rank=rank,
        shuffle=True,
        seed=seed,
        drop_last=False,
    )
    sampler.set_epoch(epoch)
    return list(sampler)


def train_loader(
    dataset: Dataset[Any],
    *,
    batch_size: int,
    num_workers: int,
    seed: int,
    epoch: int,
    skip_steps: int,
    rank: int,
    world_size: int,
    generator: torch.Generator,
    collate_fn: Collate,
    pin_memory: bool,
) -> DataLoader[Any]:
    """Full batches of ``epoch`` for this rank, from step ``skip_steps`` on."""
    indices = train_indices(
        dataset_size(dataset),
        seed=seed,
        epoch=epoch,
        rank=rank,
        world_size=world_size,
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=_Indices(indices[skip_steps * batch_size :]),
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        drop_last=True,
        generator=generator,
    )


def eval_loader(
    dataset: Dataset[Any],
    *,
    batch_size: int,
    num_workers: int,
    rank: int,
    world_size: int,
    collate_fn: Collate,
    pin_memory: bool,
) -> DataLoader[Any]:
    """This rank's share of ``dataset`` in order, every item once across ranks, last batch kept."""
    indices = list(range(rank, dataset_size(dataset), world_size))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=_Indices(indices),
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        drop_last=False,
        # A fixed generator: evaluation never draws from the global generators.
        generator=torch.Generator().manual_seed(0),
    )
