"""Requests that cannot fit, and numbers that are not numbers, fail early in one sentence.

Every test sets DOWNSIZENET_MAX_MEMORY_GB, so the outcome does not depend on this machine's memory.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from downsizenet_hub import DownsizeNet, with_resizer
from downsizenet_hub.cli.app import app
from downsizenet_hub.registry import create_resizer
from downsizenet_hub.resizing import limits
from downsizenet_hub.resizing.limits import MemoryLimitError
from downsizenet_hub.tools.learned_resize import LearnedResize

runner = CliRunner()


@pytest.fixture
def one_gib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(limits.MEMORY_LIMIT_ENV, "1")


def _one_line_error(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


# -- the limit itself --------------------------------------------------------------------------


def test_default_limit_is_a_fraction_of_physical_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(limits.MEMORY_LIMIT_ENV, raising=False)
    physical = limits.physical_memory_bytes()
    assert physical is not None and physical > 0
    limit, source = limits.memory_limit_bytes()
    assert limit == int(physical * limits.DEFAULT_MEMORY_FRACTION)
    assert "physical memory" in source


def test_environment_variable_sets_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(limits.MEMORY_LIMIT_ENV, "0.5")
    assert limits.memory_limit_bytes()[0] == 1 << 29
    limits.check_memory("small", 1 << 29)  # at the limit: allowed
    message = (
        "--opt 7 needs about 1 GiB of memory, more than the 512 MiB allowed (set by "
        f"{limits.MEMORY_LIMIT_ENV}; set {limits.MEMORY_LIMIT_ENV} to change it)."
    )
    with pytest.raises(MemoryLimitError) as caught:
        limits.check_memory("--opt 7", 1 << 30)
    assert str(caught.value) == message
    for bad in ("zero", "0", "-3", "nan", "inf"):
        monkeypatch.setenv(limits.MEMORY_LIMIT_ENV, bad)
        with pytest.raises(ValueError, match=limits.MEMORY_LIMIT_ENV):
            limits.memory_limit_bytes()


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 0, -0.5])
def test_scale_factor_must_be_finite_and_positive(value: float) -> None:
    with pytest.raises(ValueError, match=r"^--scale must be a finite, positive number"):
        limits.check_scale_factor(value, "--scale")


def test_scale_factor_must_be_a_number() -> None:
    for value in (True, "0.5", None):
        with pytest.raises(TypeError, match="scale_factor must be a number"):
            limits.check_scale_factor(value)
    assert limits.check_scale_factor(2) == 2.0


# -- the Python API ------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [math.inf, math.nan, (0.5, math.inf)])
@pytest.mark.parametrize("resizer", ["downsizenet", "bilinear"])
def test_non_finite_scale_is_a_value_error_in_every_resizer(resizer: str, scale: object) -> None:
    with pytest.raises(ValueError, match="scale_factor must be a finite, positive number"):
        create_resizer(resizer)(torch.rand(1, 3, 8, 8), scale_factor=scale)


@pytest.mark.parametrize("scale", [math.inf, math.nan])
def test_non_finite_scale_refused_when_tools_are_built(scale: float) -> None:
    with pytest.raises(ValueError, match="finite, positive"):
        LearnedResize("bilinear", scale_factor=scale)
    with pytest.raises(ValueError, match="finite, positive"):
        with_resizer(torch.nn.Identity(), "bilinear", scale=scale)


@pytest.mark.usefixtures("one_gib")
@pytest.mark.parametrize(
    "kwargs", [{"size": (100_000, 100_000)}, {"scale_factor": 1000.0}, {"scale_factor": (1, 1e6)}]
)
@pytest.mark.parametrize("resizer", ["downsizenet", "bilinear"])
def test_oversized_resize_is_refused_before_allocating(resizer: str, kwargs: dict) -> None:
    net = create_resizer(resizer)
    asked = next(iter(kwargs))
    with pytest.raises(
        MemoryLimitError,
        match=rf"^(DownsizeNet\()?{asked}=.* needs about .* "
        rf"of memory, more than the 1 GiB allowed \(set by {limits.MEMORY_LIMIT_ENV}",
    ):
        net(torch.rand(1, 3, 100, 100), **kwargs)


@pytest.mark.usefixtures("one_gib")
def test_downsizenet_counts_its_texture_branch() -> None:
    # Output and taps are small, the texture maps of a 2 x 16 x 3000 x 3000 input under autograd
    # are not (3 layers x 2.3 GB): only DownsizeNet's own estimate can see that.
    images = torch.empty(2, 3, 3000, 3000, device="meta")
    with pytest.raises(MemoryLimitError, match=r"^DownsizeNet\(size=\(8, 8\)\) on a 2x3x3000x3000"):
        DownsizeNet()(images, size=(8, 8))
    create_resizer("bilinear")(torch.rand(2, 3, 300, 300), size=(8, 8))  # fine without texture


@pytest.mark.usefixtures("one_gib")
def test_downsizenet_counts_the_anchor_block_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the last texture conv runs at the anchors only, the grid of their 3x3 blocks that it
    reads (9 pixels per output pixel: here 2x a feature map) is counted, so a resize that cannot
    fit is refused before allocating."""
    from downsizenet_hub.resizing import anchors

    net, shape, out = DownsizeNet(), (1, 3, 2000, 2000), (942, 942)  # 9 h w = 1.997 H W
    feature_map, grid = 16 * 2000 * 2000 * 4, 16 * 9 * 942 * 942 * 4
    at_anchors = {grad: net.memory_estimate(shape, out, autograd=grad) for grad in (True, False)}
    monkeypatch.setattr(anchors, "ANCHOR_MOSAIC_MAX_RATIO", 0.0)  # the whole last map instead
    monkeypatch.setattr(anchors, "ANCHOR_ROWS_MAX_RATIO", 0.0)  # (not the anchor rows either)
    whole = {grad: net.memory_estimate(shape, out, autograd=grad) for grad in (True, False)}
    # Under autograd the grid is kept instead of the last map; without, in bands of 2^17 pixels
    # it is held with the band's map (the band's share of the grid).
    assert at_anchors[True] - whole[True] == grid - feature_map
    band_share = grid * (1 << 17) // (2000 * 2000) - feature_map * (1 << 17) // (2000 * 2000)
    assert abs(at_anchors[False] - whole[False] - band_share) < 64
    assert whole[True] < 1 << 30 < at_anchors[True]
    monkeypatch.setattr(anchors, "ANCHOR_MOSAIC_MAX_RATIO", 2.0)
    with pytest.raises(MemoryLimitError, match=r"^DownsizeNet\(size=\(942, 942\)\) on a 1x3x2000x"):
        net(torch.empty(*shape, device="meta"), size=out)


@pytest.mark.usefixtures("one_gib")
def test_downsizenet_counts_the_anchor_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where inference runs the last texture conv at the anchor rows only, the three rows it
    gathers around each anchor row and the row it makes are counted beside the map they come
    from (a band's share of them on a large input); with autograd the whole map is counted."""
    from downsizenet_hub.resizing import anchors

    net, shape, out = DownsizeNet(), (1, 3, 2000, 2000), (1000, 1000)  # rows: h = 0.5 H
    assert anchors.anchor_rows_pay(shape[2:], out) and not anchors.anchors_pay(shape[2:], out)
    band = 1 << 17  # input pixels per band, without autograd
    feature_map, share = 16 * band * 4, band // 2  # the anchor rows hold half of a band
    at_rows = {grad: net.memory_estimate(shape, out, autograd=grad) for grad in (True, False)}
    monkeypatch.setattr(anchors, "ANCHOR_ROWS_MAX_RATIO", 0.0)  # the whole last map instead
    whole = {grad: net.memory_estimate(shape, out, autograd=grad) for grad in (True, False)}
    assert at_rows[True] == whole[True]
    # Two maps before; now one map, the 3 gathered 16-channel rows and 1 made per anchor row.
    assert at_rows[False] - whole[False] == (3 * 16 + 16) * share * 4 - feature_map


@pytest.mark.usefixtures("one_gib")
def test_tools_refuse_a_fixed_size_that_cannot_fit_when_built() -> None:
    for build in (
        lambda: LearnedResize("bilinear", size=(100_000, 100_000)),
        lambda: with_resizer(torch.nn.Identity(), "bilinear", size=(100_000, 100_000)),
    ):
        with pytest.raises(MemoryLimitError, match=r"^size 100000x100000 with batches of 1 needs"):
            build()
    LearnedResize("bilinear", size=(1000, 1000))  # fits
    LearnedResize("bilinear", scale_factor=1000.0)  # depends on the images: checked per call


@pytest.mark.usefixtures("one_gib")
def test_tools_refuse_oversized_requests() -> None:
    images = torch.rand(1, 3, 10, 10)
    transform = LearnedResize("bilinear", scale_factor=5000.0)
    with pytest.raises(MemoryLimitError, match="needs about"):
        transform(images)
    wrapped = with_resizer(torch.nn.Identity(), "bilinear", scale=2000.0)
    with pytest.raises(MemoryLimitError, match="needs about"):
        wrapped(images)


# -- odd inputs: each has a documented behaviour (see DownsizeNet.forward) --------------------


def test_an_empty_batch_resizes_to_an_empty_batch() -> None:
    for resizer in (DownsizeNet(), create_resizer("bilinear")):
        out = resizer(torch.rand(0, 3, 20, 30), scale_factor=0.5)
        assert out.shape == (0, 3, 10, 15)
    maps = DownsizeNet().coefficient_maps(torch.rand(0, 3, 20, 30), size=(5, 6))
    assert maps.shape == (0, 5, 6, 2, 2)


@pytest.mark.parametrize("shape", [(1, 3, 0, 0), (1, 3, 0, 10), (2, 3, 10, 0)])
@pytest.mark.parametrize("resizer", ["downsizenet", "bilinear"])
def test_an_image_without_pixels_is_a_value_error(resizer: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"^images must have at least one pixel per side"):
        create_resizer(resizer)(torch.rand(shape), size=(5, 5))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_float_dtypes_work_without_autocast(dtype: torch.dtype) -> None:
    net = DownsizeNet()
    images = torch.rand(2, 3, 30, 20)
    reference = net(images, size=(12, 9))
    out = net(images.to(dtype), size=(12, 9))
    assert out.dtype == dtype
    tolerance = 1e-5 if dtype == torch.float64 else 2e-2
    torch.testing.assert_close(out.float(), reference, atol=tolerance, rtol=0)


def test_float64_module_and_images_stay_float64() -> None:
    net = DownsizeNet(init="random").double()
    images = torch.rand(1, 3, 9, 7, dtype=torch.float64, requires_grad=True)
    assert net(images, scale_factor=0.6).dtype == torch.float64
    assert torch.autograd.gradcheck(lambda x: net(x, scale_factor=0.6), (images,))


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_pixels_stay_local(bad: float) -> None:
    net = DownsizeNet(init="random")  # texture weights that matter
    images = torch.rand(1, 3, 40, 40)
    clean = net(images, scale_factor=0.5)
    poisoned = images.clone()
    poisoned[0, 1, 20, 20] = bad
    out = net(poisoned, scale_factor=0.5)
    broken = ~torch.isfinite(out).all(dim=1)[0]
    # Output pixel i reads input 2i and 2i+1 (anchor 2i); the 3 conv layers see 3 pixels further.
    rows, cols = torch.nonzero(broken, as_tuple=True)
    assert broken.any()
    assert rows.min() >= (20 - 1 - 3) // 2 and rows.max() <= (20 + 3) // 2
    assert cols.min() >= (20 - 1 - 3) // 2 and cols.max() <= (20 + 3) // 2
    torch.testing.assert_close(out[..., ~broken], clean[..., ~broken], atol=1e-6, rtol=0)
    # bilinear propagates the same way, as F.interpolate does
    fixed = create_resizer("bilinear")(poisoned, scale_factor=0.5)
    reference = F.interpolate(poisoned, scale_factor=0.5, mode="bilinear")
    assert torch.equal(fixed.isnan(), reference.isnan())


# -- the command line ----------------------------------------------------------------------------


def _photo(path: Path, size: tuple[int, int] = (40, 60)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


@pytest.mark.usefixtures("one_gib")
@pytest.mark.parametrize(
    ("option", "words"),
    [
        (["--scale", "1000"], "--scale 1000 on 1 image(s) of 40x60 px needs about"),
        (["--size", "100000x100000"], "--size 100000x100000 on 1 image(s) of 40x60 px needs"),
        (["--scale", "nan"], "--scale must be a finite, positive number, got nan"),
        (["--scale", "inf"], "--scale must be a finite, positive number, got inf"),
        (["--scale", "-1"], "--scale must be a finite, positive number"),
    ],
)
def test_resize_refuses_bad_numbers_and_sizes_before_writing(
    tmp_path: Path, option: list[str], words: str
) -> None:
    _photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["resize", str(tmp_path / "in"), str(out), "--resizer", "bilinear", *option]
    )
    assert result.exit_code == 2
    assert words in _one_line_error(result.output)
    assert not out.exists()


@pytest.mark.usefixtures("one_gib")
def test_export_refuses_an_input_size_that_cannot_fit(tmp_path: Path) -> None:
    target = tmp_path / "x.onnx"
    result = runner.invoke(
        app,
        ["export", "bilinear", "--onnx", str(target), "--scale", "0.5",
         "--input-size", "100000x100000"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "input_size=(100000, 100000)" in _one_line_error(result.output)
    assert "needs about" in result.output and not target.exists()
    result = runner.invoke(
        app, ["export", "bilinear", "--onnx", str(target), "--scale", "inf", "--input-size", "9"]
    )
    assert result.exit_code == 2 and "finite, positive" in _one_line_error(result.output)


@pytest.mark.usefixtures("one_gib")
def test_scenes_refuses_a_size_that_cannot_fit(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["data", "scenes", "--out", str(tmp_path / "s"), "--size", "1000000"]
    )
    assert result.exit_code == 2
    assert _one_line_error(result.output).endswith(
        f"(set by {limits.MEMORY_LIMIT_ENV}; set {limits.MEMORY_LIMIT_ENV} to change it)."
    )
    assert "--size 1000000 needs about" in result.output and not (tmp_path / "s").exists()


@pytest.mark.usefixtures("one_gib")
@pytest.mark.parametrize("command", ["pretrain", "transfer"])
def test_training_commands_refuse_their_size_before_preparing_data(
    tmp_path: Path, isolated_home: Path, command: str
) -> None:
    extra = ["--resizer", "bilinear"] if command == "transfer" else []
    result = runner.invoke(
        app, [command, "--size", "100000x100000", "--run-dir", str(tmp_path / "run"), *extra]
    )
    assert result.exit_code == 2
    line = _one_line_error(result.output)
    assert re.search(r"--size 100000x100000 with batches of \d+ needs about .* TiB", line), line
    assert not (isolated_home / "data").exists() and not (tmp_path / "run").exists()
