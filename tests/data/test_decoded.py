"""The scenes decoded once into mapped arrays: the same samples as the files, built atomically."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from downsizenet_hub.data import decoded, ensure_scenes
from downsizenet_hub.data.decoded import DECODED_DIR, DecodedScenes
from downsizenet_hub.data.voc import VOCDataset


def _raw(root: Path, split: str) -> VOCDataset:
    from downsizenet_hub.data import scenes

    names = scenes.read_manifest(root)["class_names"]
    return VOCDataset(root, split, segmentation=True, detection=True, class_names=names)


@pytest.mark.parametrize("split", ["train", "val"])
def test_decoded_samples_equal_the_files_value_for_value_and_type_for_type(
    tmp_path: Path, fake_items: list[str], split: str
) -> None:
    root = ensure_scenes(5, seed=3, size=100, val_images=2, out=tmp_path / "scenes")
    raw = _raw(root, split)
    served = DecodedScenes(raw, root, split)
    assert len(served) == len(raw) and served.class_names == raw.class_names
    for index in range(len(raw)):
        (image, target), (want_image, want) = served[index], raw[index]
        assert type(image) is type(want_image) and torch.equal(image, want_image)
        assert image.dtype == want_image.dtype == torch.uint8
        assert set(target) == set(want)
        for key in want:
            assert type(target[key]) is type(want[key]), key
            assert target[key].dtype == want[key].dtype, key
            assert torch.equal(target[key], want[key]), key
        assert target["boxes"].canvas_size == want["boxes"].canvas_size
        assert target["boxes"].format == want["boxes"].format


def test_a_killed_decode_leaves_nothing_that_looks_complete(
    tmp_path: Path, fake_items: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = ensure_scenes(3, seed=0, size=100, out=tmp_path / "scenes")
    raw = _raw(root, "train")

    def killed(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(decoded.np, "save", killed)  # dies after the image arrays were written
    with pytest.raises(KeyboardInterrupt):
        DecodedScenes(raw, root, "train")
    assert not (root / DECODED_DIR / "train").exists()
    assert [p.name for p in (root / DECODED_DIR).iterdir()] == []  # no partial folder left
    monkeypatch.undo()
    assert torch.equal(DecodedScenes(raw, root, "train")[0][0], raw[0][0])


def test_a_read_only_scenes_folder_is_read_file_by_file(
    tmp_path: Path, fake_items: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from downsizenet_hub.data import build_dataset

    root = ensure_scenes(3, seed=0, size=100, out=tmp_path / "scenes")

    def unwritable(*_: object) -> Path:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(decoded, "ensure_decoded", unwritable)
    dataset = build_dataset("scenes", "train", task="segmentation", root=root)
    assert isinstance(dataset.raw, VOCDataset)
    assert dataset[0][0].shape == (3, 100, 100)
