"""Image files to tensors and back in the same mode and format."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from downsizenet_hub import imageio
from downsizenet_hub.imageio import ImageFileError, read_header, read_image, write_image


def _random(shape: tuple[int, ...], dtype: type = np.uint8, top: int = 255) -> np.ndarray:
    return np.random.default_rng(0).integers(0, top + 1, size=shape).astype(dtype)


@pytest.mark.parametrize(
    ("mode", "array", "channels", "alpha"),
    [
        ("RGB", _random((5, 7, 3)), 3, False),
        ("L", _random((5, 7)), 1, False),
        ("RGBA", _random((5, 7, 4)), 4, True),
        ("LA", _random((5, 7, 2)), 2, True),
        ("I;16", _random((5, 7), np.uint16, 65535), 1, False),
    ],
)
def test_png_round_trip_is_lossless(
    tmp_path: Path, mode: str, array: np.ndarray, channels: int, alpha: bool
) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(array).save(source)
    loaded = read_image(source)
    assert loaded.header.mode == mode
    assert (loaded.header.channels, loaded.header.alpha) == (channels, alpha)
    assert loaded.pixels.shape == (channels, 5, 7) and loaded.pixels.dtype == torch.float32
    assert float(loaded.pixels.min()) >= 0.0 and float(loaded.pixels.max()) <= 1.0
    target = tmp_path / "out.png"
    write_image(target, loaded.pixels, loaded)
    assert target.stat().st_mode & 0o777 == 0o644  # an ordinary file, not mkstemp's private one
    with Image.open(target) as written:
        assert written.mode == mode and written.format == "PNG"
        np.testing.assert_array_equal(np.asarray(written), array)


def test_palette_image_is_read_as_rgb_and_written_back_as_palette(tmp_path: Path) -> None:
    source = tmp_path / "in.gif"
    Image.fromarray(_random((6, 6, 3))).quantize(16).save(source)
    loaded = read_image(source)
    assert loaded.header.mode == "P" and loaded.pixels.shape == (3, 6, 6)
    write_image(tmp_path / "out.gif", loaded.pixels, loaded)
    with Image.open(tmp_path / "out.gif") as written:
        assert written.mode == "P" and written.format == "GIF"
        # 16 colours fit in the adaptive palette, so the pixels come back exactly.
        np.testing.assert_array_equal(
            np.asarray(written.convert("RGB")), np.asarray(Image.open(source).convert("RGB"))
        )


def test_bilevel_image_is_thresholded_back(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(_random((4, 4), top=1).astype(bool)).save(source)
    loaded = read_image(source)
    assert loaded.header.mode == "1" and set(loaded.pixels.unique().tolist()) <= {0.0, 1.0}
    write_image(tmp_path / "out.png", loaded.pixels * 0.6, loaded)  # 0.6 >= 0.5: stays white
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == "1"
        np.testing.assert_array_equal(np.asarray(written), np.asarray(Image.open(source)))


def test_jpeg_keeps_format_icc_and_exif(tmp_path: Path) -> None:
    source = tmp_path / "in.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    Image.fromarray(_random((16, 16, 3))).save(source, exif=exif, icc_profile=b"fake-icc")
    loaded = read_image(source)
    write_image(tmp_path / "out.jpg", loaded.pixels[:, :8, :8], loaded)
    with Image.open(tmp_path / "out.jpg") as written:
        assert written.format == "JPEG" and written.size == (8, 8)
        assert written.getexif()[0x0112] == 6
        assert written.info.get("icc_profile") == b"fake-icc"


def test_cmyk_is_resized_as_rgb_and_written_as_cmyk(tmp_path: Path) -> None:
    source = tmp_path / "in.jpg"
    Image.fromarray(_random((8, 8, 3))).convert("CMYK").save(source)
    loaded = read_image(source)
    assert loaded.header.mode == "CMYK" and loaded.pixels.shape == (3, 8, 8)
    write_image(tmp_path / "out.jpg", loaded.pixels, loaded)
    with Image.open(tmp_path / "out.jpg") as written:
        assert written.mode == "CMYK"


def test_values_are_clamped_and_rounded(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(_random((2, 2))).save(source)
    loaded = read_image(source)
    pixels = torch.tensor([[[-0.5, 1.7], [0.5 / 255, 254.6 / 255]]])
    write_image(tmp_path / "out.png", pixels, loaded)
    with Image.open(tmp_path / "out.png") as written:
        np.testing.assert_array_equal(np.asarray(written), [[0, 255], [0, 255]])


def test_unreadable_file_is_one_sentence_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ImageFileError, match=r"gone\.png: no such file"):
        read_image(tmp_path / "gone.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(ImageFileError, match=r"broken\.png: cannot read as an image"):
        read_header(broken)
    with pytest.raises(ImageFileError, match=r"broken\.png: cannot read as an image"):
        read_image(broken)


def test_truncated_file_fails_when_decoded(tmp_path: Path) -> None:
    source = tmp_path / "cut.png"
    Image.fromarray(_random((64, 64, 3))).save(source)
    source.write_bytes(source.read_bytes()[:200])
    with pytest.raises(ImageFileError, match=r"cut\.png"):
        read_image(source)


def test_animated_and_unsupported_modes_are_refused(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (4, 4), colour) for colour in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageFileError, match="2 frames"):
        read_header(tmp_path / "anim.gif")
    Image.fromarray(np.zeros((3, 3), np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(ImageFileError, match="mode 'F' is not supported"):
        read_header(tmp_path / "float.tif")


def test_write_is_atomic_and_leaves_no_temporary_on_failure(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(_random((4, 4, 3))).save(source)
    loaded = read_image(source)
    with pytest.raises(ValueError, match="must have shape"):
        write_image(tmp_path / "out.png", torch.rand(1, 4, 4), loaded)
    target = tmp_path / "out.png"
    target.write_bytes(b"previous")
    bad_format = imageio.LoadedImage(
        loaded.pixels, imageio.ImageHeader(source, 4, 4, "RGB", "NO-SUCH-FORMAT", 3, False)
    )
    with pytest.raises(ImageFileError, match="cannot write"):
        write_image(target, loaded.pixels, bad_format)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]


def test_docstring_examples_run() -> None:
    result = doctest.testmod(imageio)
    assert result.attempted > 0 and result.failed == 0
