"""``downsizenet resize``: folders and globs in, same names and formats out; bad input is safe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from downsizenet_hub import DownsizeNet
from downsizenet_hub.cli.app import app

runner = CliRunner()


def _photo(path: Path, size: tuple[int, int] = (40, 60), mode: str = "RGB", seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (*size, 4), dtype=np.uint8)
    Image.fromarray(array).convert(mode).save(path)
    return path


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _one_line_error(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def test_resize_a_folder_keeps_names_formats_and_modes(tmp_path: Path) -> None:
    _photo(tmp_path / "in" / "a.png")
    _photo(tmp_path / "in" / "b.jpg", size=(30, 20))
    _photo(tmp_path / "in" / "nested" / "gray.png", mode="L")
    _photo(tmp_path / "in" / "nested" / "alpha.png", mode="RGBA")
    before = _tree(tmp_path / "in")
    result = runner.invoke(
        app,
        [
            "resize",
            str(tmp_path / "in"),
            str(tmp_path / "out"),
            "--resizer",
            "bilinear",
            "--scale",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "resized 4 of 4 images" in result.output
    expected = {
        "a.png": ("RGB", (30, 20)),
        "b.jpg": ("RGB", (10, 15)),
        "nested/gray.png": ("L", (30, 20)),
    }
    expected["nested/alpha.png"] = ("RGBA", (30, 20))
    for name, (mode, size) in expected.items():
        with Image.open(tmp_path / "out" / name) as image:
            assert (image.mode, image.size) == (mode, size)
            assert image.format == ("JPEG" if name.endswith(".jpg") else "PNG")
    assert _tree(tmp_path / "in") == before  # inputs untouched


def test_resize_a_glob_with_a_size_and_a_learned_resizer(tmp_path: Path) -> None:
    _photo(tmp_path / "shots" / "x.png")
    _photo(tmp_path / "shots" / "y.png", seed=1)
    _photo(tmp_path / "shots" / "skip.jpg")
    DownsizeNet().save_pretrained(str(tmp_path / "my-resizer"))  # a published-resizer folder
    result = runner.invoke(
        app,
        [
            "resize",
            str(tmp_path / "shots" / "*.png"),
            str(tmp_path / "small"),
            "--resizer",
            str(tmp_path / "my-resizer"),
            "--size",
            "16x24",
            "--batch-size",
            "1",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "small").iterdir()) == ["x.png", "y.png"]
    with Image.open(tmp_path / "small" / "x.png") as image:
        assert image.size == (24, 16)


def test_unreadable_files_are_reported_skipped_and_counted(tmp_path: Path) -> None:
    _photo(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    result = runner.invoke(
        app,
        [
            "resize",
            str(tmp_path / "in"),
            str(tmp_path / "out"),
            "--resizer",
            "area",
            "--scale",
            "0.5",
        ],
    )
    assert result.exit_code == 1
    assert "skipped:" in result.output and "broken.jpg" in result.output
    assert "resized 1 of 2 images" in result.output and "1 file(s) failed" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]
    assert (tmp_path / "in" / "broken.jpg").read_bytes() == b"\xff\xd8 this is not a jpeg"


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda t: [str(t / "missing"), str(t / "out"), "--scale", "0.5"], "does not exist"),
        (lambda t: [str(t / "in"), str(t / "in" / "small"), "--scale", "0.5"], "inside it"),
        (lambda t: [str(t / "in"), str(t / "in"), "--scale", "0.5"], "inside it"),
        (
            lambda t: [str(t / "in" / "*.png"), str(t / "in"), "--scale", "0.5"],
            "would overwrite the input",
        ),
        (lambda t: [str(t / "in"), str(t / "out")], "exactly one of --size HxW or --scale S"),
        (
            lambda t: [str(t / "in"), str(t / "out"), "--scale", "0.5", "--size", "8x8"],
            "exactly one of",
        ),
        (
            lambda t: [str(t / "in"), str(t / "out"), "--scale", "-1"],
            "--scale must be a finite, positive number",
        ),
        (
            lambda t: [str(t / "in"), str(t / "out"), "--scale", "0.5", "--device", "tpu9"],
            "--device",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_loses_nothing(
    tmp_path: Path, make_args, message: str
) -> None:  # type: ignore[no-untyped-def]
    _photo(tmp_path / "in" / "a.png")
    before = _tree(tmp_path)
    result = runner.invoke(app, ["resize", *make_args(tmp_path), "--resizer", "bilinear"])
    assert result.exit_code == 2, result.output
    assert message in _one_line_error(result.output)
    assert _tree(tmp_path) == before


def test_unknown_resizer_is_one_line_exit_2(tmp_path: Path) -> None:
    _photo(tmp_path / "in" / "a.png")
    result = runner.invoke(
        app,
        [
            "resize",
            str(tmp_path / "in"),
            str(tmp_path / "out"),
            "--resizer",
            "nobody/nothing",
            "--scale",
            "0.5",
        ],
    )
    assert result.exit_code == 2
    assert "nobody/nothing" in _one_line_error(result.output)
    assert not (tmp_path / "out").exists()


def test_existing_outputs_need_overwrite(tmp_path: Path) -> None:
    _photo(tmp_path / "in" / "a.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"earlier result")
    args = [
        "resize",
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        "--resizer",
        "area",
        "--scale",
        "0.5",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--overwrite" in _one_line_error(result.output)
    assert (tmp_path / "out" / "a.png").read_bytes() == b"earlier result"
    result = runner.invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out" / "a.png") as image:
        assert image.size == (30, 20)
