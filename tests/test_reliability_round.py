"""What the second round of hostile cases (kinds issue 31 did not list) found, each fixed and
kept: a scale of 1e300, a config.json that is a link to itself, a model card that is a FIFO or
64 GiB, an empty input path, weights that are not a regular file, a lone surrogate escape in
config.json, scene counts past any disk. The whole round (217 cases, 23 kinds) is a script kept
outside the suite; these are its findings."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from downsizenet_hub import DownsizeNet
from downsizenet_hub.cli import app
from downsizenet_hub.hub import save_pretrained
from downsizenet_hub.resizing.limits import format_bytes

from helpers import assert_one_line_error


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    folder = tmp_path / "saved"
    save_pretrained(DownsizeNet(conv_layers=1, channels=4), folder)
    return folder


def image(path: Path) -> Path:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return path


def test_a_scale_whose_memory_estimate_overflows_is_refused(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(
        app, ["resize", str(image(tmp_path / "a.png")), str(tmp_path / "out"), "--resizer",
              "bilinear", "--scale", "1e300", "--no-progress"],
    )  # fmt: skip
    assert_one_line_error(result, "--scale 1e+300 on 1 image(s) of 8x8 px needs about more bytes")
    assert format_bytes(10**400) == "more bytes than a float holds"
    assert format_bytes(3 * 2**50) == "3 PiB"


def test_a_config_json_linked_to_itself_is_a_user_error(runner: CliRunner, saved: Path) -> None:
    (saved / "config.json").unlink()
    os.symlink("config.json", saved / "config.json")
    assert_one_line_error(
        runner.invoke(app, ["hub", "publish", str(saved), "me/x"]),
        f"{saved / 'config.json'}: too many levels of symbolic links",
    )


@pytest.mark.parametrize("kind", ["FIFO", "64 GiB", "not UTF-8"])
def test_hub_show_reads_only_a_bounded_regular_card(
    runner: CliRunner, saved: Path, kind: str
) -> None:
    card = saved / "README.md"
    card.unlink()
    if kind == "FIFO":
        os.mkfifo(card)
        expected = "is not a regular file (a FIFO)"
    elif kind == "64 GiB":
        with open(card, "wb") as handle:
            handle.truncate(2**36)  # sparse: no disk used
        expected = "is larger than 16777216 bytes; not shown"
    else:
        card.write_bytes(b"\xff\xfe card")
        expected = "is not UTF-8 text"
    assert_one_line_error(
        runner.invoke(app, ["hub", "show", str(saved)]), f"model card {card} {expected}"
    )


@pytest.mark.parametrize("kind", ["FIFO", "folder"])
def test_weights_that_are_not_a_regular_file_are_named_as_such(
    runner: CliRunner, saved: Path, kind: str
) -> None:
    weights = saved / "model.safetensors"
    weights.unlink()
    os.mkfifo(weights) if kind == "FIFO" else weights.mkdir()
    assert_one_line_error(
        runner.invoke(app, ["hub", "publish", str(saved), "me/x"]),
        f"{weights} is not a regular file",
    )


def test_a_lone_surrogate_in_config_json_is_refused(runner: CliRunner, saved: Path) -> None:
    path = saved / "config.json"
    path.write_text(path.read_text().replace("{", '{"x": "\\ud800",', 1))
    assert_one_line_error(
        runner.invoke(app, ["hub", "publish", str(saved), "me/x"]), "lone surrogate escape"
    )


def test_an_empty_input_path_is_not_the_current_folder(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image(tmp_path / "here.png")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app, ["resize", "", str(tmp_path / "out"), "--resizer", "bilinear", "--scale", "0.5"]
    )
    assert_one_line_error(result, "the input is empty")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "scenes", "--out", "sc", "--images", "1000001"],
        ["data", "scenes", "--out", "sc", "--val-images", "1000001"],
        ["pretrain", "--train-images", str(10**12)],
        ["transfer", "--val-images", str(10**7)],
    ],
)
def test_scene_counts_past_a_million_are_refused_by_the_option(
    runner: CliRunner, tmp_path: Path, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, argv)
    assert result.exit_code == 2 and "less than or equal to 1000000" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["folder", "FIFO"])
def test_compare_names_an_input_that_is_not_a_file(
    runner: CliRunner, tmp_path: Path, kind: str
) -> None:
    source = tmp_path / "in.png"
    source.mkdir() if kind == "folder" else os.mkfifo(source)
    result = runner.invoke(
        app, ["compare", str(source), "--resizers", "bilinear", "--scale", "0.5", "--out",
              str(tmp_path / "c.png")],
    )  # fmt: skip
    assert_one_line_error(
        result, f"{source}: " + ("is a folder" if kind == "folder" else "not a regular")
    )
