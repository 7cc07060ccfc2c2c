"""The comparison figure (coefficient maps included) and ``downsizenet compare``."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from downsizenet_hub import DownsizeNet
from downsizenet_hub.cli.app import app
from downsizenet_hub.registry import create_resizer
from downsizenet_hub.tools import compare
from downsizenet_hub.tools.compare import (
    coefficient_maps,
    compare_figure,
    detail_window,
    save_figure,
)

runner = CliRunner()


def _photo(path: Path, mode: str = "RGB") -> Path:
    array = np.random.default_rng(0).integers(0, 256, (90, 120, 4), dtype=np.uint8)
    Image.fromarray(array).convert(mode).save(path)
    return path


def test_classical_twin_gives_zero_deviation_and_bilinear_weights() -> None:
    image = torch.rand(3, 30, 40)
    maps = coefficient_maps(DownsizeNet.as_bilinear(), image, size=(11, 13))
    assert maps.learned.shape == (11, 13, 2, 2)
    assert float(maps.deviation.max()) < 1e-6
    # The classical coefficients are the bilinear weights: the products of (1 - d, d) per axis.
    src_x = ((torch.arange(13) + 0.5) * 40 / 13 - 0.5).clamp_min(0)
    dx = src_x - src_x.floor()
    torch.testing.assert_close(maps.classical[0, :, 0, 1] + maps.classical[0, :, 1, 1], dx.float())


def test_deviation_is_the_share_of_weight_moved() -> None:
    net = DownsizeNet()
    with torch.no_grad():
        net.head.weight.normal_(0.0, 2.0)
    maps = coefficient_maps(net, torch.rand(3, 30, 40), scale_factor=0.5)
    expected = 0.5 * (maps.learned - maps.classical).abs().sum(dim=(-2, -1))
    torch.testing.assert_close(maps.deviation, expected)
    assert 0.0 < float(maps.deviation.mean()) <= 1.0
    torch.testing.assert_close(maps.learned.sum(dim=(-2, -1)), torch.ones(15, 20))


def test_gray_images_get_coefficients_from_the_gray_picture_as_rgb() -> None:
    net = DownsizeNet()
    with torch.no_grad():
        net.head.weight.normal_(0.0, 1.0)
    gray = torch.rand(1, 20, 20)
    maps = coefficient_maps(net, gray, size=(8, 8))
    with torch.no_grad():
        expected = net.coefficient_maps(gray.expand(3, -1, -1)[None], size=(8, 8))[0]
    torch.testing.assert_close(maps.learned, expected)


def test_detail_window_finds_the_textured_corner() -> None:
    image = torch.zeros(3, 40, 50)
    image[:, 25:35, 5:15] = torch.rand(3, 10, 10)
    assert detail_window(image, 10) == (25, 5)


def test_figure_panels_and_one_to_one_pixels(tmp_path: Path) -> None:
    resizers = [
        ("area", create_resizer("area")),
        ("learned", DownsizeNet(neighbourhood="antialias")),
    ]
    figure = compare_figure(
        torch.rand(3, 100, 80), resizers, scale_factor=0.3, crop_side=12, zoom_panel=96
    )
    # input: 2 panels; each resizer: 2; the DownsizeNet: deviation + entropy change (wide taps).
    assert len(figure.axes) == 8
    real_size = figure.axes[2]  # area at real size: 30x24 image pixels on 24x30 figure pixels
    width, height = real_size.get_window_extent().size
    assert (round(width), round(height)) == (24, 30)
    save_figure(figure, tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_mode & 0o777 == 0o644
    with Image.open(tmp_path / "grid.png") as saved:
        assert saved.size == (
            round(figure.get_figwidth() * figure.dpi),
            round(figure.get_figheight() * figure.dpi),
        )
    with pytest.raises(ValueError, match="suffix"):
        save_figure(figure, tmp_path / "grid.nope")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]


def test_bad_figure_inputs() -> None:
    with pytest.raises(ValueError, match="1 or 3 channels"):
        compare_figure(torch.rand(2, 10, 10), [("area", create_resizer("area"))], size=5)
    with pytest.raises(ValueError, match="at least one resizer"):
        compare_figure(torch.rand(3, 10, 10), [], size=5)


def test_compare_command_writes_the_grid(tmp_path: Path) -> None:
    image = _photo(tmp_path / "photo.png", mode="RGBA")
    result = runner.invoke(
        app,
        [
            "compare",
            str(image),
            "--resizers",
            "downsizenet,bilinear,antialias,area",
            "--scale",
            "0.3",
            "--out",
            str(tmp_path / "grid.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.format == "PNG" and grid.size[0] > 5 * 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.png", "--resizers", "bilinear", "--scale", "0.3"], "missing.png: no such file"),
        (
            ["photo.png", "--resizers", "bilinear,nobody/nothing", "--scale", "0.3"],
            "nobody/nothing",
        ),
        (["photo.png", "--resizers", " , ", "--scale", "0.3"], "at least one resizer"),
        (["photo.png", "--resizers", "bilinear"], "exactly one of --size HxW or --scale S"),
        (["notes.txt", "--resizers", "bilinear", "--scale", "0.3"], "cannot read as an image"),
    ],
)
def test_compare_command_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    _photo(tmp_path / "photo.png")
    (tmp_path / "notes.txt").write_text("not an image")
    result = runner.invoke(app, ["compare", *args, "--out", "grid.png"])
    assert result.exit_code == 2
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "grid.png").exists()


def test_docstring_examples_run() -> None:
    result = doctest.testmod(compare)
    assert result.attempted > 0 and result.failed == 0
