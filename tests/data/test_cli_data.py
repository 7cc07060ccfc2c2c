"""`downsizenet data scenes` and `downsizenet data show` through typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from downsizenet_hub.cli import app

runner = CliRunner()


@pytest.mark.usefixtures("fake_items")
def test_scenes_then_show(tmp_path: Path) -> None:
    out = tmp_path / "scenes"
    result = runner.invoke(
        app, ["data", "scenes", "--out", str(out), "--images", "3", "--seed", "2", "--size", "100"]
    )
    assert result.exit_code == 0, result.output
    assert "3 train + 1 val scenes of 100 px (seed 2)" in result.output
    assert len(list((out / "VOCdevkit/VOC2012/JPEGImages").iterdir())) == 4
    again = runner.invoke(
        app, ["data", "scenes", "--out", str(out), "--images", "3", "--seed", "2", "--size", "100"]
    )
    assert again.exit_code == 0, again.output  # the same build is reused

    grid = tmp_path / "figures" / "grid.png"
    result = runner.invoke(app, ["data", "show", str(out), "--out", str(grid), "--n", "2"])
    assert result.exit_code == 0, result.output
    with Image.open(grid) as image:
        assert image.mode == "RGB" and image.size == (2 * 100 + 3 * 4, 100 + 2 * 4)
    noisy = tmp_path / "noisy.png"
    result = runner.invoke(
        app, ["data", "show", str(out), "--out", str(noisy), "--split", "val", "--variant", "noisy"]
    )
    assert result.exit_code == 0, result.output
    assert noisy.read_bytes() != grid.read_bytes()


@pytest.mark.usefixtures("fake_items")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "scenes", "--out", "{tmp}/s", "--images", "0"], "at least one train"),
        (["data", "scenes", "--out", "{tmp}/busy", "--images", "1"], "already exists"),
        (["data", "show", "{tmp}/busy", "--out", "{tmp}/g.png"], "scenes.json"),
        (["data", "show", "{tmp}/nothing", "--out", "{tmp}/g.png"], "scenes.json"),
        (["data", "show", "{tmp}/busy", "--out", "{tmp}/g.jpg"], ".png"),
        (["data", "show", "{tmp}/busy", "--out", "{tmp}/g.png", "--split", "test"], "split"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    result = runner.invoke(app, [arg.format(tmp=tmp_path) for arg in args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output and result.output.strip().count("\n") == 0
