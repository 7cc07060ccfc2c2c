"""Shared fixtures: each test gets its own DOWNSIZENET_HOME, so nothing touches the user's cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    home = tmp_path_factory.mktemp("downsizenet_home")
    monkeypatch.setenv("DOWNSIZENET_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
