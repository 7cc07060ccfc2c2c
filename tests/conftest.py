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


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every address a socket of this process tries to connect to while the test runs.

    Connections still go through (to whatever listens, or fail as they would): tests count them
    instead of timing the call, which is what "fails at once / never goes online" means and does
    not depend on how loaded the machine is.
    """
    import socket

    attempts: list[object] = []
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def recorded_connect(self: socket.socket, address: object) -> None:
        attempts.append(address)
        connect(self, address)  # type: ignore[arg-type]

    def recorded_connect_ex(self: socket.socket, address: object) -> int:
        attempts.append(address)
        return connect_ex(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", recorded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", recorded_connect_ex)
    return attempts
