"""The learned baselines (Talebi-Milanfar resizer, strided convolution) and output statistics."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from downsizenet_hub.experiments.output_stats import output_statistics
from downsizenet_hub.resizing.strided import StridedConfig, StridedResizer
from downsizenet_hub.resizing.talebi import TalebiConfig, TalebiResizer

# (input shape, resize arguments): fractional scales, odd sizes, non-square, up and down.
TALEBI_CALLS: list[tuple[tuple[int, int, int, int], dict[str, Any]]] = [
    ((2, 3, 17, 13), {"scale_factor": 0.3}),
    ((1, 3, 20, 20), {"scale_factor": 0.35}),
    ((2, 3, 15, 22), {"scale_factor": (0.5, 0.7)}),
    ((1, 3, 16, 16), {"size": (7, 11)}),
    ((2, 3, 9, 10), {"size": 5}),
    ((1, 3, 6, 5), {"scale_factor": 1.7}),
]


pytestmark = pytest.mark.usefixtures("one_thread")


def _train_briefly(
    resizer: nn.Module, shape: tuple[int, ...], steps: int = 3, **kwargs: Any
) -> None:
    """A few SGD steps on random data: weights off their start, batch-norm statistics updated."""
    optimiser = torch.optim.SGD(resizer.parameters(), lr=0.1)
    resizer.train()
    for _ in range(steps):
        loss = resizer(torch.rand(shape), **kwargs).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    resizer.zero_grad(set_to_none=True)


# ---------------------------------------------------------------------- shapes and refusals
@pytest.mark.parametrize(("shape", "kwargs"), TALEBI_CALLS)
def test_talebi_output_shape_matches_interpolate(
    shape: tuple[int, int, int, int], kwargs: dict[str, Any]
) -> None:
    images = torch.rand(shape)
    expected = F.interpolate(images, mode="bilinear", align_corners=False, **kwargs).shape
    assert TalebiResizer(init="random")(images, **kwargs).shape == expected


@pytest.mark.parametrize(
    ("k", "shape", "kwargs", "out"),
    [
        (2, (2, 3, 8, 6), {"scale_factor": 0.5}, (4, 3)),
        (2, (1, 3, 9, 7), {"scale_factor": 0.5}, (4, 3)),  # odd sides: the remainder is unread
        (2, (1, 3, 8, 6), {"size": (4, 3)}, (4, 3)),
        (3, (1, 3, 9, 12), {"scale_factor": (1 / 3, 1 / 3)}, (3, 4)),
        (4, (1, 3, 8, 8), {"scale_factor": 0.25}, (2, 2)),
    ],
)
def test_strided_output_shape(
    k: int, shape: tuple[int, ...], kwargs: dict[str, Any], out: tuple[int, int]
) -> None:
    resized = StridedResizer(k=k)(torch.rand(shape), **kwargs)
    assert resized.shape == (*shape[:2], *out)
    if "scale_factor" in kwargs:  # the same size as F.interpolate gives
        assert resized.shape == F.interpolate(torch.rand(shape), **kwargs).shape


@pytest.mark.parametrize(
    ("shape", "kwargs"),
    [
        ((1, 3, 8, 8), {"scale_factor": 0.3}),
        ((1, 3, 8, 8), {"scale_factor": 0.5 + 1e-6}),
        ((1, 3, 8, 8), {"scale_factor": (0.5, 0.25)}),
        ((1, 3, 8, 8), {"size": (4, 5)}),
        ((1, 3, 9, 8), {"size": (4, 4)}),  # 9 -> 4 is not a factor of 1/2
    ],
)
def test_strided_refuses_other_factors(shape: tuple[int, ...], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"only downsizes by 1/2 \(scale_factor=0.5") as error:
        StridedResizer()(torch.rand(shape), **kwargs)
    assert str(error.value).count(". ") == 0  # one sentence


def test_strided_refuses_an_image_smaller_than_its_window() -> None:
    # 1 row at x0.5 has no output row: the core's size check refuses it, as for every resizer.
    with pytest.raises(ValueError, match="at least one pixel per side") as error:
        StridedResizer()(torch.rand(1, 3, 1, 8), scale_factor=0.5)
    assert str(error.value).count(". ") == 0


@pytest.mark.parametrize("resizer", [TalebiResizer(), StridedResizer()])
def test_exactly_one_of_size_and_scale_factor(resizer: nn.Module) -> None:
    images = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="exactly one of size"):
        resizer(images)
    with pytest.raises(ValueError, match="exactly one of size"):
        resizer(images, size=(4, 4), scale_factor=0.5)
    with pytest.raises(ValueError, match=r"B x 3 x H x W, got \(1, 1, 8, 8\)"):
        resizer(torch.rand(1, 1, 8, 8), scale_factor=0.5)


# ---------------------------------------------------------------------- starting points
@pytest.mark.parametrize(("shape", "kwargs"), TALEBI_CALLS)
@pytest.mark.parametrize("residual_blocks", [1, 2])
def test_talebi_starts_as_bilinear(
    shape: tuple[int, int, int, int], kwargs: dict[str, Any], residual_blocks: int
) -> None:
    images = torch.rand(shape)
    resizer = TalebiResizer(residual_blocks=residual_blocks)  # training mode: batch statistics
    bilinear = F.interpolate(images, mode="bilinear", align_corners=False, **kwargs)
    out = resizer(images, **kwargs)
    assert (out - bilinear).abs().max() < 1e-3
    assert torch.equal(out, bilinear)  # the output convolution is exactly zero


def test_talebi_random_init_is_not_bilinear() -> None:
    images = torch.rand(2, 3, 12, 12)
    out = TalebiResizer(init="random")(images, scale_factor=0.5)
    assert (out - F.interpolate(images, scale_factor=0.5, mode="bilinear")).abs().max() > 1e-3


@pytest.mark.parametrize("k", [2, 3])
def test_strided_starts_as_area(k: int) -> None:
    images = torch.rand(2, 3, 6 * k, 5 * k)
    resizer = StridedResizer(k=k)
    area = F.interpolate(images, scale_factor=1 / k, mode="area")
    torch.testing.assert_close(resizer(images, scale_factor=1 / k), area, rtol=0, atol=1e-6)
    torch.testing.assert_close(resizer(images, size=(6, 5)), area, rtol=0, atol=1e-6)
    odd = torch.rand(1, 3, 6 * k + 1, 5 * k + k - 1)  # remainders: equals avg_pool2d
    expected = F.avg_pool2d(odd, k)
    torch.testing.assert_close(resizer(odd, scale_factor=1 / k), expected, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------- gradients
def test_talebi_gradients_reach_every_parameter() -> None:
    resizer = TalebiResizer(init="random", residual_blocks=2)
    resizer(torch.rand(2, 3, 11, 9), scale_factor=0.45).square().mean().backward()
    for name, parameter in resizer.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_talebi_bilinear_start_trains_every_parameter_from_the_second_step() -> None:
    resizer = TalebiResizer()
    images = torch.rand(2, 3, 10, 10)
    resizer(images, size=(4, 4)).square().mean().backward()
    moving = {n for n, p in resizer.named_parameters() if p.grad is not None and p.grad.any()}
    assert moving == {"output.weight", "output.bias"}  # zero output conv: nothing else yet
    _train_briefly(resizer, (2, 3, 10, 10), steps=1, size=(4, 4))
    resizer.zero_grad()
    resizer(images, size=(4, 4)).square().mean().backward()
    for name, parameter in resizer.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_strided_gradients_and_gradcheck() -> None:
    resizer = StridedResizer()
    resizer(torch.rand(2, 3, 8, 6), scale_factor=0.5).square().mean().backward()
    for name, parameter in resizer.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    double = StridedResizer(channels=2).double()
    images = torch.rand(1, 2, 4, 6, dtype=torch.float64, requires_grad=True)
    weight, bias = double.conv.weight, double.conv.bias
    assert bias is not None

    def call(images: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(
            double, {"conv.weight": weight, "conv.bias": bias}, (images,), {"scale_factor": 0.5}
        )

    assert torch.autograd.gradcheck(
        call, (images, weight.detach().requires_grad_(), bias.detach().requires_grad_())
    )


# ---------------------------------------------------------------------- configs
@pytest.mark.parametrize(
    "config",
    [
        TalebiConfig(),
        TalebiConfig(channels=1, filters=8, residual_blocks=2, output_kernel=3, init="random"),
        StridedConfig(),
        StridedConfig(channels=1, k=4, init="random"),
    ],
)
def test_config_round_trip(config: TalebiConfig | StridedConfig) -> None:
    data = json.loads(json.dumps(config.to_dict()))
    assert type(config).from_dict(data) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.channels = 5  # type: ignore[misc]


def test_config_defaults() -> None:
    assert TalebiConfig().to_dict() == {
        "channels": 3,
        "filters": 16,
        "residual_blocks": 1,
        "output_kernel": 7,
        "init": "bilinear",
    }
    assert StridedConfig().to_dict() == {"channels": 3, "k": 2, "init": "area"}


@pytest.mark.parametrize(
    ("cls", "data", "error", "message"),
    [
        (TalebiConfig, {"filter": 16}, ValueError, r"unknown Talebi config key\(s\) \['filter'\]"),
        (TalebiConfig, {"filters": 0}, ValueError, "filters must be between 1 and 1024"),
        (TalebiConfig, {"residual_blocks": 0}, ValueError, "residual_blocks must be between"),
        (TalebiConfig, {"residual_blocks": 1.0}, TypeError, "residual_blocks must be an int"),
        (TalebiConfig, {"output_kernel": 4}, ValueError, "output_kernel must be odd"),
        (TalebiConfig, {"init": "area"}, ValueError, r"init must be one of \['bilinear'"),
        (TalebiConfig, [1, 2], TypeError, "must be a JSON object"),
        (StridedConfig, {"stride": 2}, ValueError, r"unknown strided config key\(s\)"),
        (StridedConfig, {"k": 0}, ValueError, "k must be between 1 and 64"),
        (StridedConfig, {"k": True}, TypeError, "k must be an int"),
        (StridedConfig, {"channels": "3"}, TypeError, "channels must be an int"),
        (StridedConfig, {"init": "bilinear"}, ValueError, r"init must be one of \['area'"),
    ],
)
def test_bad_configs_are_refused(cls: type, data: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        cls.from_dict(data)


def test_from_config_and_overrides() -> None:
    assert TalebiResizer.from_config({"residual_blocks": 2}).config.residual_blocks == 2
    assert len(TalebiResizer.from_config(TalebiConfig(residual_blocks=2)).blocks) == 2
    assert StridedResizer(StridedConfig(k=3), channels=1).config == StridedConfig(channels=1, k=3)
    with pytest.raises(TypeError, match="config must be a TalebiConfig"):
        TalebiResizer(StridedConfig())  # type: ignore[arg-type]


def test_talebi_parameter_count_matches_the_keras_example() -> None:
    """The Keras example reports 7,051,717 - 7,039,554 = 12,163 parameters for its resizer; Keras
    counts batch norm's moving mean and variance (4 layers x 16 x 2 = 128) as parameters."""
    resizer = TalebiResizer()
    parameters = sum(p.numel() for p in resizer.parameters())
    moving = sum(b.numel() for n, b in resizer.named_buffers() if n.endswith(("_mean", "_var")))
    assert (parameters, moving) == (12035, 128)
    assert parameters + moving == 7_051_717 - 7_039_554


# ---------------------------------------------------------------------- storage and freezing
@pytest.mark.parametrize(
    ("build", "kwargs"),
    [
        (lambda: TalebiResizer(residual_blocks=2), {"scale_factor": 0.4}),
        (lambda: StridedResizer(k=2), {"scale_factor": 0.5}),
    ],
)
def test_safetensors_round_trip_reproduces_outputs(
    build: Any, kwargs: dict[str, Any], tmp_path: Path
) -> None:
    resizer = build()
    _train_briefly(resizer, (4, 3, 10, 10), **kwargs)
    resizer.eval()
    path = tmp_path / "model.safetensors"
    save_file(resizer.state_dict(), str(path))
    loaded = type(resizer).from_config(json.loads(json.dumps(resizer.config.to_dict())))
    loaded.load_state_dict(load_file(str(path)), strict=True)
    loaded.eval()
    images = torch.rand(2, 3, 10, 10)
    with torch.no_grad():
        assert torch.equal(loaded(images, **kwargs), resizer(images, **kwargs))


def test_frozen_talebi_gets_no_grads_and_keeps_running_stats() -> None:
    resizer = TalebiResizer(residual_blocks=2)
    _train_briefly(resizer, (4, 3, 10, 10), size=(5, 5))
    resizer.requires_grad_(False).eval()
    before = {name: buffer.clone() for name, buffer in resizer.named_buffers()}
    images = torch.rand(2, 3, 10, 10, requires_grad=True)
    resizer(images, size=(5, 5)).sum().backward()
    assert images.grad is not None  # gradients still pass through to what comes before
    assert all(p.grad is None for p in resizer.parameters())
    for name, buffer in resizer.named_buffers():
        assert torch.equal(buffer, before[name]), name


# ---------------------------------------------------------------------- output statistics
class _Affine(nn.Module):
    """``2 x - 0.5`` after nearest resizing; records the mode it was called in."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: list[bool] = []

    def forward(self, images: torch.Tensor, size: Any = None, scale_factor: Any = None) -> Any:
        self.modes.append(self.training)
        resized = F.interpolate(images, size=size, scale_factor=scale_factor, mode="nearest")
        return 2 * resized - 0.5


def test_output_statistics_known_numbers() -> None:
    images = torch.tensor([[[[0.25, 0.5], [0.5, 1.0]]]])  # outputs 0, 0.5, 0.5, 1.5
    resizer = _Affine().train()
    stats = output_statistics(resizer, images, scale_factor=1.0)
    assert stats["values"] == 4
    assert stats["min"] == 0.0 and stats["max"] == 1.5
    assert stats["mean"] == pytest.approx(0.625)
    assert stats["std"] == pytest.approx(math.sqrt(0.296875))
    assert stats["outside_input_range"] == 0.5  # 0 < 0.25 and 1.5 > 1
    assert stats["outside_unit_range"] == 0.25  # 1.5 only
    assert resizer.modes == [False] and resizer.training  # ran in eval, mode restored


def test_output_statistics_merges_batches_exactly() -> None:
    batches = [torch.rand(2, 3, 6, 6), torch.rand(1, 3, 6, 6), torch.rand(3, 3, 6, 6)]
    merged = output_statistics(_Affine(), batches, size=(3, 3))
    whole = output_statistics(_Affine(), torch.cat(batches), size=(3, 3))
    assert merged.keys() == whole.keys()
    for key, value in whole.items():
        assert merged[key] == pytest.approx(value, rel=1e-12), key


def test_output_statistics_compares_each_image_with_its_own_range() -> None:
    dark, bright = torch.full((1, 1, 2, 2), 0.1), torch.full((1, 1, 2, 2), 0.9)
    dark[..., 0, 0], bright[..., 0, 0] = 0.0, 1.0

    class Swap(nn.Module):
        def forward(self, images: torch.Tensor, size: Any = None, scale_factor: Any = None) -> Any:
            return images.flip(0)

    stats = output_statistics(Swap(), torch.cat([dark, bright]), scale_factor=1.0)
    # Every value lies in [0, 1], the batch's range, but outside its own image's range.
    assert stats["outside_input_range"] == 1.0
    assert stats["outside_unit_range"] == 0.0


def test_output_statistics_of_the_baselines() -> None:
    images = torch.rand(2, 3, 12, 12)
    bilinear = output_statistics(TalebiResizer(), images, scale_factor=0.4)
    assert bilinear["outside_input_range"] == 0.0  # starts as bilinear: a convex mix
    trained = TalebiResizer()
    _train_briefly(trained, (2, 3, 12, 12), scale_factor=0.4)  # pulls outputs towards 0
    assert output_statistics(trained, images, scale_factor=0.4)["outside_input_range"] > 0
    area = output_statistics(StridedResizer(), images, scale_factor=0.5)
    assert area["outside_input_range"] == 0.0
    assert area["mean"] == pytest.approx(float(images.double().mean()), abs=1e-6)
