"""The compiled kernels (resizing/native.py): what they compute, how they are built and when
they are refused. Their use inside the resizer is tested in test_resizer.py."""

from __future__ import annotations

import ctypes
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from downsizenet_hub.resizing import native

needs_kernel = pytest.mark.skipif(
    native.kernels() is None, reason="no C compiler here to build the native kernels"
)


def _expected(
    features: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    rows: torch.Tensor,
    cols: torch.Tensor,
) -> torch.Tensor:
    full = F.relu(F.conv2d(features, weight, bias, padding=1))
    picked = full[:, :, rows][:, :, :, cols]
    return picked.permute(0, 2, 3, 1).reshape(features.shape[0], -1, weight.shape[0])


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    ("channels", "out_channels", "with_bias"),
    [(16, 16, True), (3, 8, False), (7, 32, True), (16, 64, False), (4, 24, True)],
)
def test_the_kernel_is_conv2d_and_relu_at_the_anchors(
    channels: int, out_channels: int, with_bias: bool, threads: int
) -> None:
    """Every accumulator width it specialises (8 and 16 four anchors at a time inside the
    borders; 32, 64) and one it does not (24); anchors on all four borders, repeated, and runs
    of four."""
    generator = torch.Generator().manual_seed(channels * 100 + out_channels)
    features = torch.randn(3, channels, 13, 17, generator=generator)
    features = features.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(out_channels, channels, 3, 3, generator=generator)
    bias = torch.randn(out_channels, generator=generator) if with_bias else None
    rows = torch.tensor([0, 1, 1, 6, 12])
    cols = torch.tensor([0, 1, 2, 3, 4, 4, 9, 10, 11, 16, 15, 14, 13])
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            got = native.conv3x3_relu_at(features, weight, bias, rows, cols)
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(got, _expected(features, weight, bias, rows, cols))
    assert (got >= 0).all() and (got == 0).any()  # the ReLU ran


@needs_kernel
def test_the_kernel_writes_into_a_slice_and_nowhere_else() -> None:
    """``out`` may be rows of a larger tensor (a band of the pooled features): the kernel
    follows its batch stride and leaves the other rows as they were."""
    features = torch.randn(2, 4, 9, 8)
    weight, bias = torch.randn(8, 4, 3, 3), torch.randn(8)
    rows, cols = torch.tensor([2, 5]), torch.tensor([0, 3, 7])
    pooled = torch.full((2, 10, 8), -7.0)
    native.conv3x3_relu_at(features, weight, bias, rows, cols, out=pooled[:, 2:8])
    torch.testing.assert_close(pooled[:, 2:8], _expected(features, weight, bias, rows, cols))
    assert (pooled[:, :2] == -7).all() and (pooled[:, 8:] == -7).all()
    with pytest.raises(ValueError, match="contiguous pixel vectors"):
        native.conv3x3_relu_at(features, weight, bias, rows, cols, out=torch.empty(2, 6, 8).mT)


@needs_kernel
def test_anchors_outside_the_map_are_refused_before_anything_is_written() -> None:
    features, weight = torch.randn(1, 2, 5, 5), torch.randn(8, 2, 3, 3)
    out = torch.zeros(1, 2, 8)
    for rows, cols in (([0, 5], [1]), ([0], [-1, 2])):
        with pytest.raises(ValueError, match="outside the feature map"):
            native.conv3x3_relu_at(
                features, weight, None, torch.tensor(rows), torch.tensor(cols), out=out
            )
    assert (out == 0).all()
    with pytest.raises(ValueError, match="multiples of 8"):  # not a width it takes
        native.conv3x3_relu_at(features, weight[:5], None, torch.tensor([0]), torch.tensor([1]))
    with torch.no_grad():
        assert not native.applies(features, weight[:5])


@pytest.fixture
def kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty kernels folder for the build tests."""
    folder = tmp_path / "kernels"
    monkeypatch.setenv("DOWNSIZENET_KERNELS_DIR", str(folder))
    return folder


@needs_kernel
def test_a_kernel_is_built_once_then_reused(kernels: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = native.build()
    assert path is not None and path.parent == kernels
    assert [p.name for p in kernels.iterdir()] == [path.name]  # no temporary left behind
    assert stat.S_IMODE(path.stat().st_mode) & (stat.S_IWGRP | stat.S_IWOTH) == 0

    def no_compiler(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("built again")

    monkeypatch.setattr(subprocess, "run", no_compiler)
    assert native.build() == path


@needs_kernel
@pytest.mark.parametrize("flags", native.FLAG_SETS, ids=lambda flags: " ".join(flags[:2]))
def test_every_build_this_compiler_makes_passes_the_checks(flags: tuple[str, ...]) -> None:
    """The fallbacks too (POSIX threads instead of OpenMP, portable flags), where this compiler
    builds them."""
    path = native.build(flags)
    if path is None:
        pytest.skip(f"this compiler does not build with {' '.join(flags)}")
    loaded = native.load(path)
    assert loaded is not None and native.passes_checks(loaded)


def test_an_unreadable_kernels_folder_or_source_leaves_the_eager_path(
    kernels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernels.parent.mkdir(exist_ok=True)
    kernels.write_text("a file where the folder should be")
    assert native.build() is None
    monkeypatch.setattr(native, "SOURCE", kernels.parent / "missing.c")
    assert native.build() is None


def test_no_compiler_or_a_failing_build_leaves_the_eager_path(
    kernels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-here")
    assert native.compiler() is None and native.build() is None
    monkeypatch.setenv("CC", "false")  # a compiler that always fails
    assert native.build() is None
    assert not kernels.exists() or list(kernels.iterdir()) == []  # nothing half-written


@needs_kernel
def test_a_library_another_user_could_write_is_not_loaded(kernels: Path) -> None:
    path = native.build()
    assert path is not None
    path.chmod(0o666)
    assert native.build() is None
    path.unlink()
    path.symlink_to(kernels)  # a link is not a library either
    assert native.build() is None


def test_the_kernels_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.NATIVE_ENV, "0")
    assert native.kernels.__wrapped__() is None  # type: ignore[attr-defined]


def _zeros(*args: Any) -> int:
    """A "kernel" that writes zeros wherever it is asked to write."""
    if len(args) == 15:  # the anchor conv
        out, size = args[5], args[6] * args[11] * args[12] * args[10]
    else:  # the mix
        out, size = args[3], args[4] * args[5] * args[6]
    ctypes.memset(out, 0, size * 4)
    return 0


@needs_kernel
def test_kernels_that_disagree_with_pytorch_are_refused() -> None:
    loaded = native.kernels()
    assert loaded is not None and native.passes_checks(loaded)
    assert not native.passes_checks(loaded._replace(anchor_conv=_zeros))
    assert not native.passes_checks(loaded._replace(mix=_zeros))


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_the_mix_kernel_is_a_weighted_sum_of_the_taps(layout: str, threads: int) -> None:
    generator = torch.Generator().manual_seed(3)
    images = torch.randn(3, 5, 7, 6, generator=generator)
    if layout == "channels_last":
        images = images.contiguous(memory_format=torch.channels_last)
    taps = torch.randint(0, 42, (11, 9), generator=generator)
    taps[0] = 41  # the last pixel, nine times
    coefficients = torch.rand(3, 11, 9, generator=generator)
    expected = (images.flatten(2)[:, :, taps] * coefficients[:, None]).sum(-1).mT
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = native.mix_taps(images, taps, coefficients)
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="outside the images"):
        native.mix_taps(images, taps.clamp_max(41) + 1, coefficients)
    with pytest.raises(ValueError, match="coefficients must be"):
        native.mix_taps(images, taps, coefficients[:, :10])
    transposed = torch.randn(3, 5, 6, 7).mT  # no flat pixel index reaches these: not for it
    with torch.no_grad():
        assert not native.mix_applies(transposed, coefficients)
        assert native.mix_applies(images, coefficients)


def test_the_kernel_runs_only_where_it_pays_and_only_for_float32_inference() -> None:
    assert native.pays((513, 513), (179, 179)) and native.pays((300, 300), (160, 160))
    assert not native.pays((300, 300), (250, 250))
    weight = torch.zeros(16, 16, 3, 3)
    with torch.no_grad():
        assert not native.applies(torch.zeros(1, 16, 4, 4, dtype=torch.float64), weight)
        assert not native.applies(torch.zeros(1, 16, 4, 4), torch.zeros(65, 16, 3, 3))
    assert not native.applies(torch.zeros(1, 16, 4, 4), weight)  # autograd on
    if native.kernels() is not None:
        with torch.no_grad():
            assert native.applies(torch.zeros(1, 16, 4, 4), weight)
