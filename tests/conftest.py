"""Shared fixtures: each test gets its own DOWNSIZENET_HOME, so nothing touches the user's cache."""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (the README's ``-n 2``), each worker process computes on one thread,
    and so do the processes its tests start, unless a test says otherwise: the workers already
    keep both cores busy, and two threads each would make four on two cores."""
    if hasattr(config, "workerinput"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
    # The compiled kernels are built once for the whole run (and its subprocesses), not
    # once per test home; tests of the build itself point this elsewhere.
    uid = os.getuid() if hasattr(os, "getuid") else 0
    kernels = Path(tempfile.gettempdir()) / f"downsizenet-test-kernels-{uid}"
    os.environ.setdefault("DOWNSIZENET_KERNELS_DIR", str(kernels))
    # Before any convolution: the golden checks compare numbers that oneDNN's choice of
    # vector instructions rounds differently (an AVX-512 host moved them).
    from downsizenet_hub.study.golden import pin_onednn_isa

    pin_onednn_isa()


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
def eager_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inference without the compiled kernels (:mod:`.resizing.native`), so that a test
    exercises the eager paths they replace (the grid of blocks, the anchor rows, the bags)."""
    from downsizenet_hub.resizing import native

    monkeypatch.setattr(native, "kernels", lambda: None)


@pytest.fixture
def one_thread() -> Any:
    """One intra-op thread for the test, restored afterwards. Tiny tensors gain nothing from
    threads, and on a busy machine each OpenMP barrier can wait for milliseconds. A test module
    opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shipped(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder in place of the resizers the package ships, so that whatever it ships, a
    test sees only its own local hub; a test that needs shipped resizers writes real ones here.
    (Outside ``tmp_path``, which some tests expect to stay empty.)"""
    from downsizenet_hub.hub import local

    folder = tmp_path_factory.mktemp("shipped-resizers")
    monkeypatch.setattr(local, "SHIPPED_DIR", folder)
    return folder


@pytest.fixture
def runner(shipped: Path) -> CliRunner:
    """A CLI runner whose commands see only the test's own local hub (see :func:`shipped`)."""
    return CliRunner()


@pytest.fixture
def deadline() -> Iterator[None]:
    """Fail, rather than hang the suite, if the test blocks for 60 s (a FIFO opened for reading
    waits for a writer forever)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError("blocked for 60 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


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


@pytest.fixture
def trained_baseline() -> Callable[..., nn.Module]:
    """``trained_baseline(name, config, resize)``: the learned baseline ``name`` (a registered
    name, e.g. "talebi") with ``config``, every tensor moved off its start (batch-norm statistics
    by one training-mode call with ``resize``), in eval mode."""
    from downsizenet_hub.registry import create_resizer

    def build(name: str, config: dict[str, Any], resize: dict[str, Any]) -> nn.Module:
        model = create_resizer(name, **config)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
        model.train()
        model(torch.rand(4, 3, 24, 24), **resize)  # moves the running statistics
        return model.eval()

    return build


@pytest.fixture(scope="session")
def vgg_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random VGG16 trunk as safetensors: no 60 MB download or conversion in tests."""
    from safetensors.torch import save_file
    from torchvision.models import vgg16

    path = tmp_path_factory.mktemp("vgg") / "vgg16_random.safetensors"
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in vgg16().features.state_dict().items()}, str(path))
    return path
