"""Fixtures for the data tests."""

from __future__ import annotations

import pytest
import torch

from downsizenet_hub.data import scenes

from .layouts import fake_fashion_mnist


@pytest.fixture
def fake_items(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Scenes built in this test use :func:`fake_fashion_mnist`; returns the splits it loaded."""
    loaded: list[str] = []

    def load(split: str = "train", root: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        loaded.append(split)
        return fake_fashion_mnist(split, root)

    monkeypatch.setattr(scenes, "load_fashion_mnist", load)
    return loaded
