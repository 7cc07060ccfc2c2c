"""Planning and running a folder resize: safety checks, batching, skipped files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from downsizenet_hub.registry import create_resizer
from downsizenet_hub.tools.folder_resize import ResizeTask, find_inputs, plan_resize, resize_files


def _save(path: Path, size: tuple[int, int] = (12, 16), mode: str = "RGB", seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = np.random.default_rng(seed).integers(0, 256, (*size, channels), dtype=np.uint8)
    Image.fromarray(array[:, :, 0] if channels == 1 else array).save(path)
    return path


class _CountingResizer(nn.Module):
    """Bilinear interpolation that records the batch shapes it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, ...]] = []

    def forward(self, images: torch.Tensor, size=None, scale_factor=None) -> torch.Tensor:  # type: ignore[no-untyped-def]
        self.calls.append(tuple(images.shape))
        return create_resizer("bilinear")(images, size=size, scale_factor=scale_factor)


def test_folder_inputs_are_found_recursively_with_relative_names(tmp_path: Path) -> None:
    _save(tmp_path / "in" / "a.png")
    _save(tmp_path / "in" / "sub" / "b.JPG")
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    tasks = plan_resize(tmp_path / "in", tmp_path / "out")
    assert [(t.source.relative_to(tmp_path), t.target.relative_to(tmp_path)) for t in tasks] == [
        (Path("in/a.png"), Path("out/a.png")),
        (Path("in/sub/b.JPG"), Path("out/sub/b.JPG")),
    ]


def test_glob_inputs_are_named_relative_to_the_glob_base(tmp_path: Path) -> None:
    _save(tmp_path / "shots" / "day1" / "x.png")
    _save(tmp_path / "shots" / "day2" / "y.png")
    files, base = find_inputs(str(tmp_path / "shots" / "*" / "*.png"))
    assert base == tmp_path / "shots" and [f.name for f in files] == ["x.png", "y.png"]
    tasks = plan_resize(str(tmp_path / "shots" / "*" / "*.png"), tmp_path / "small")
    assert [t.target for t in tasks] == [
        tmp_path / "small" / "day1" / "x.png",
        tmp_path / "small" / "day2" / "y.png",
    ]


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda root: root / "missing", FileNotFoundError, "does not exist"),
        (lambda root: str(root / "*.png"), FileNotFoundError, "matches no files"),
    ],
)
def test_missing_inputs(tmp_path: Path, make, error, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        plan_resize(make(tmp_path), tmp_path / "out")


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "readme.txt").write_text("hello")
    with pytest.raises(ValueError, match="no image files"):
        plan_resize(tmp_path / "in", tmp_path / "out")


@pytest.mark.parametrize("output", ["in", "in/small", "in/../in"])
def test_output_equal_to_or_inside_the_input_folder_is_refused(tmp_path: Path, output: str) -> None:
    _save(tmp_path / "in" / "a.png")
    with pytest.raises(ValueError, match="inside"):
        plan_resize(tmp_path / "in", tmp_path / output)


def test_output_that_would_overwrite_an_input_is_refused(tmp_path: Path) -> None:
    _save(tmp_path / "photos" / "a.png")
    with pytest.raises(ValueError, match="would overwrite the input"):
        plan_resize(str(tmp_path / "photos" / "*.png"), tmp_path / "photos")
    with pytest.raises(ValueError, match="would overwrite the input"):
        plan_resize(tmp_path / "photos" / "a.png", tmp_path / "photos")


def test_existing_outputs_need_overwrite(tmp_path: Path) -> None:
    _save(tmp_path / "in" / "a.png")
    _save(tmp_path / "out" / "a.png", seed=1)
    with pytest.raises(FileExistsError, match="1 output file"):
        plan_resize(tmp_path / "in", tmp_path / "out")
    assert len(plan_resize(tmp_path / "in", tmp_path / "out", overwrite=True)) == 1
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        plan_resize(tmp_path / "in", tmp_path / "file")


def test_same_sized_images_share_batches_and_match_the_resizer(tmp_path: Path) -> None:
    for index in range(5):
        _save(tmp_path / "in" / f"big{index}.png", size=(20, 30), seed=index)
    _save(tmp_path / "in" / "small.png", size=(10, 10), seed=9)
    _save(tmp_path / "in" / "gray.png", size=(20, 30), mode="L")
    resizer = _CountingResizer()
    tasks = plan_resize(tmp_path / "in", tmp_path / "out")
    report = resize_files(tasks, resizer, size=(8, 6), batch_size=2)
    assert not report.failed and len(report.written) == 7
    # 5 RGB 20x30 in batches of 2, 2, 1; the gray and the small one alone.
    assert sorted(resizer.calls) == sorted(
        [(2, 3, 20, 30), (2, 3, 20, 30), (1, 3, 20, 30), (1, 1, 20, 30), (1, 3, 10, 10)]
    )
    with Image.open(tmp_path / "in" / "big3.png") as image:
        source = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255
    expected = F.interpolate(source[None], size=(8, 6), mode="bilinear", align_corners=False)[0]
    expected = (expected * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    with Image.open(tmp_path / "out" / "big3.png") as written:
        assert written.size == (6, 8)
        np.testing.assert_array_equal(np.asarray(written), expected)
    with Image.open(tmp_path / "out" / "gray.png") as written:
        assert written.mode == "L" and written.size == (6, 8)


def test_unreadable_files_are_skipped_and_reported(tmp_path: Path) -> None:
    _save(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "bad.png").write_bytes(b"garbage")
    tasks = plan_resize(tmp_path / "in", tmp_path / "out")
    seen: list[tuple[ResizeTask, str | None]] = []
    report = resize_files(
        tasks, create_resizer("area"), scale_factor=0.5, on_done=lambda t, e: seen.append((t, e))
    )
    assert report.written == [tmp_path / "out" / "good.png"]
    assert [(path.name, "cannot read" in why) for path, why in report.failed] == [("bad.png", True)]
    assert len(seen) == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]
    assert (tmp_path / "in" / "bad.png").read_bytes() == b"garbage"


def test_scale_that_leaves_no_pixel_fails_those_files_only(tmp_path: Path) -> None:
    _save(tmp_path / "in" / "tiny.png", size=(2, 2))
    _save(tmp_path / "in" / "big.png", size=(20, 20))
    report = resize_files(
        plan_resize(tmp_path / "in", tmp_path / "out"), create_resizer("area"), scale_factor=0.1
    )
    assert [p.name for p in report.written] == ["big.png"]
    assert [p.name for p, _ in report.failed] == ["tiny.png"]
    assert "at least one pixel" in report.failed[0][1]


def test_batch_size_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        resize_files([], create_resizer("area"), size=4, batch_size=0)
