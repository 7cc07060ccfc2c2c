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
        (["data", "scenes", "--out", "{tmp}/s", "--family", "C"], "Unknown scene family 'C'"),
        (["pretrain", "--family", "C", "--run-dir", "{tmp}/r"], "Unknown scene family 'C'"),
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


@pytest.mark.usefixtures("fake_items")
def test_scenes_of_one_family_hold_only_its_classes(tmp_path: Path) -> None:
    from downsizenet_hub.data import build_dataset
    from downsizenet_hub.data.composition import SCENE_FAMILIES

    out = tmp_path / "b"
    args = ["data", "scenes", "--out", str(out), "--images", "3", "--size", "100"]
    result = runner.invoke(app, [*args, "--family", "B"])
    assert result.exit_code == 0, result.output
    assert "large items, family B." in result.output
    classes = SCENE_FAMILIES["B"][0]
    assert classes is not None
    dataset = build_dataset("scenes", "train", task="detection", root=out)
    labels = {int(label) for i in range(len(dataset)) for label in dataset[i][1]["labels"]}
    assert labels and labels <= {c + 1 for c in classes}


def test_a_family_names_its_run_folder_and_the_default_keeps_the_old_name() -> None:
    from downsizenet_hub.cli.common import data_options_from
    from downsizenet_hub.cli.data import run_label

    def label(family: str) -> str:
        return run_label(
            data_options_from("scenes", None, "noisy", 0.3, None, 8, 4, "large", family)
        )

    assert label("all") == "scenes-noisy-large-x0.3"
    assert label("A") == "scenes-noisy-large-famA-x0.3"
