"""JSON a user can hand us: hostile nesting, huge files and garbage are one ValueError naming the
file, never a RecursionError, wherever the package reads JSON."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from downsizenet_hub import DownsizeNet
from downsizenet_hub.cli import app
from downsizenet_hub.data.files import CorruptFileError
from downsizenet_hub.data.scenes import read_manifest
from downsizenet_hub.engine import TrainConfig
from downsizenet_hub.experiments.common import finished_result
from downsizenet_hub.hub import from_pretrained, save_pretrained
from downsizenet_hub.jsonfile import loads_json, nesting_depth, read_json, read_matching
from downsizenet_hub.study.config_file import load_config

DEEP = "[" * 100_000 + "]" * 100_000


def one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("{}", 1),
        ('[[1], [2, [3]], {"a": [4]}]', 3),
        ('"[[[["', 0),  # brackets inside strings do not count
        ('{"a": "\\"[[["}', 1),  # nor after an escaped quote
        ('["a\\\\", "[["]', 1),  # an escaped backslash ends before the quote
        (DEEP, 100_000),
    ],
)
def test_nesting_depth(text: str, depth: int) -> None:
    assert nesting_depth(text) == depth


def test_read_json_bounds_depth_size_and_refuses_garbage(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"a": [1, 2, {"b": null}]}')
    assert read_json(path) == {"a": [1, 2, {"b": None}]}
    cases = {
        DEEP.encode(): "nests arrays or objects 100000 levels deep; at most 64 are read",
        b"[" * 100_000: "nests arrays or objects 100000 levels deep",
        b'{"a": 1': "is not valid JSON",
        b"\xff\xfe{}": "is not UTF-8 text",
        b"1" * 5000: "is not valid JSON",  # Python's limit on integer digits
        b" " * 2000: "larger than 1000 bytes",
    }
    for data, expected in cases.items():
        path.write_bytes(data)
        with pytest.raises(ValueError) as error:
            read_json(path, what="test file", max_bytes=1000 if len(data) == 2000 else 10**7)
        assert one_line(error).startswith(f"test file {path} ")
        assert expected in str(error.value)
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "missing.json")


def test_loads_json_limits_depth() -> None:
    assert loads_json("[[[]]]", source="s", max_depth=3) == [[[]]]
    with pytest.raises(ValueError, match="s nests arrays or objects 4 levels deep; at most 3"):
        loads_json("[[[[]]]]", source="s", max_depth=3)


def test_a_deep_resizer_config(tmp_path: Path) -> None:
    folder = tmp_path / "resizer"
    save_pretrained(DownsizeNet(conv_layers=1, channels=4), folder)
    (folder / "config.json").write_text(DEEP)
    with pytest.raises(ValueError) as error:
        from_pretrained(folder)
    assert one_line(error).startswith(f"resizer config {folder / 'config.json'} nests")
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (8, 8)).save(images / "a.png")
    result = CliRunner().invoke(
        app,
        ["resize", str(images), str(tmp_path / "out"), "--resizer", str(folder), "--scale", "0.5"],
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"resizer config {folder / 'config.json'} nests" in result.stderr


def test_a_deep_scenes_manifest(tmp_path: Path) -> None:
    (tmp_path / "scenes.json").write_text(DEEP)
    with pytest.raises(CorruptFileError) as error:
        read_manifest(tmp_path)
    assert one_line(error).startswith(f"scenes manifest {tmp_path / 'scenes.json'} nests")


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_a_deep_study_config(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"study{suffix}"
    path.write_text(DEEP if suffix == ".json" else "a = " + DEEP[:20_000] + DEEP[-20_000:])
    with pytest.raises(ValueError) as error:
        load_config(path)
    assert one_line(error).startswith(f"cannot parse {path}: ")


def test_deep_metrics_are_not_a_finished_run(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(DEEP)
    assert finished_result(tmp_path, {}, TrainConfig()) is None


def test_read_matching_finds_only_a_record_of_the_same_inputs(tmp_path: Path) -> None:
    path = tmp_path / "cell.json"
    assert read_matching(path, {"spec": 1}, what="cell result") is None  # missing
    path.write_text('["not", "an", "object"]')
    assert read_matching(path, {"spec": 1}, what="cell result") is None
    path.write_text('{"spec": 2, "metrics": {}}')
    assert read_matching(path, {"spec": 1}, what="cell result") is None  # other inputs
    assert read_matching(path, {"spec": 2}, what="cell result") == {"spec": 2, "metrics": {}}


def test_metrics_that_are_not_an_object_are_not_a_finished_run(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("[]")
    assert finished_result(tmp_path, {}, TrainConfig()) is None
