"""The scenes benchmark: composition, determinism, build-once caching, atomic writes, read-back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from downsizenet_hub import paths
from downsizenet_hub.data import CorruptFileError, SceneConfig, build_dataset, ensure_scenes
from downsizenet_hub.data import scenes as scenes_module
from downsizenet_hub.data.scenes import (
    DEFAULT_LAYOUT,
    SCENE_LAYOUTS,
    compose_scene,
    read_manifest,
    scene_layout,
)

from .layouts import fake_fashion_mnist


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "scenes.json"
    }


def test_compose_scene_alpha_thresholds_and_box() -> None:
    items, _ = fake_fashion_mnist()
    config = SceneConfig(cell_size=28, item_size=(28, 28), occupancy=1.0)
    scene = compose_scene(np.random.default_rng(1), 28, items.numpy()[3:4], np.array([3]), config)
    empty = compose_scene(
        np.random.default_rng(1), 28, np.zeros((1, 28, 28), np.uint8), np.array([3]), config
    )
    expected = np.zeros((28, 28), dtype=np.uint8)
    expected[6:22, 6:22] = 255  # alpha 77/255 = 0.30: the ambiguous rim
    expected[8:20, 8:20] = 4  # opaque core: class 3 + 1
    # alpha 20/255 = 0.08 <= transparent_alpha stays background
    np.testing.assert_array_equal(scene.mask, expected)
    assert scene.boxes.tolist() == [[6, 6, 22, 22]] and scene.labels.tolist() == [4]
    # The same draws without an item give the bare background: pixel = a * tint + (1 - a) * bg.
    alpha = items.numpy()[3].astype(np.float32)[..., None] / 255
    tint = scene.image[10, 10].astype(np.float32)
    composite = alpha * tint + (1 - alpha) * empty.image.astype(np.float32)
    assert np.abs(composite - scene.image.astype(np.float32)).max() <= 1.0
    assert empty.boxes.shape == (0, 4) and not empty.mask.any()


def test_default_grid_places_separate_items_with_consistent_labels() -> None:
    items, classes = fake_fashion_mnist()
    scene = compose_scene(
        np.random.default_rng(0), 300, items.numpy(), classes.numpy(), SceneConfig()
    )
    assert 15 <= len(scene.labels) <= 36  # 6 x 6 cells at occupancy 0.75
    covered = np.zeros_like(scene.mask, dtype=bool)
    for (x1, y1, x2, y2), label in zip(scene.boxes.tolist(), scene.labels.tolist(), strict=True):
        assert 24 * 16 / 28 <= x2 - x1 <= 40 and 1 <= label <= 10
        assert not covered[y1:y2, x1:x2].any()  # no two items overlap
        covered[y1:y2, x1:x2] = True
        inside = set(np.unique(scene.mask[y1:y2, x1:x2]).tolist())
        assert label in inside and inside <= {0, label, 255}  # 0 only in rounded-off corners
        assert (
            scene.mask[y1:y2, x1:x2][[0, -1], :].any()
            and scene.mask[y1:y2, x1:x2][:, [0, -1]].any()
        )
    assert not scene.mask[~covered].any()


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, fake_items: list[str]) -> None:
    config = SceneConfig()
    first = ensure_scenes(3, seed=5, size=100, config=config, out=tmp_path / "a")
    second = ensure_scenes(3, seed=5, size=100, config=config, out=tmp_path / "b")
    other = ensure_scenes(3, seed=6, size=100, config=config, out=tmp_path / "c")
    assert _files(first) == _files(second)
    images = "VOCdevkit/VOC2012/JPEGImages/train_000000.jpg"
    assert _files(first)[images] != _files(other)[images]
    manifest = read_manifest(first)
    assert manifest["seed"] == 5 and manifest["images"] == {"train": 3, "val": 1}
    assert manifest["class_names"][1] == "t-shirt/top" and len(manifest["class_names"]) == 11
    assert sorted(set(fake_items)) == ["test", "train"]  # val scenes use Fashion-MNIST test items


def test_a_scene_does_not_depend_on_how_many_were_built(
    tmp_path: Path, fake_items: list[str]
) -> None:
    small = _files(ensure_scenes(2, seed=1, size=100, val_images=1, out=tmp_path / "small"))
    large = _files(ensure_scenes(3, seed=1, size=100, val_images=1, out=tmp_path / "large"))
    for name in (
        "JPEGImages/train_000001.jpg",
        "SegmentationClass/train_000001.png",
        "Annotations/train_000001.xml",
    ):
        key = f"VOCdevkit/VOC2012/{name}"
        assert small[key] == large[key]


def test_built_once_then_reused(monkeypatch: pytest.MonkeyPatch, fake_items: list[str]) -> None:
    root = ensure_scenes(2, seed=0, size=100)
    assert root.parent == paths.data_dir() / "scenes"

    def no_rebuild(*args: object) -> None:
        raise AssertionError("rebuilt a cached scenes build")

    monkeypatch.setattr(scenes_module, "_build", no_rebuild)
    assert ensure_scenes(2, seed=0, size=100) == root
    with pytest.raises(AssertionError, match="rebuilt"):
        ensure_scenes(2, seed=1, size=100)


def test_interrupted_build_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_items: list[str]
) -> None:
    written: list[Path] = []
    original: Callable[..., None] = scenes_module.write_label_png

    def fail_on_third(path: Path, labels: np.ndarray) -> None:
        written.append(path)
        if len(written) == 3:
            raise KeyboardInterrupt
        original(path, labels)

    monkeypatch.setattr(scenes_module, "write_label_png", fail_on_third)
    with pytest.raises(KeyboardInterrupt):
        ensure_scenes(4, seed=0, size=100, out=tmp_path / "scenes")
    assert list(tmp_path.iterdir()) == []  # neither the result nor the staging folder


def test_output_folder_rules(tmp_path: Path, fake_items: list[str]) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="busy already exists"):
        ensure_scenes(1, seed=0, size=100, out=tmp_path / "busy")
    (tmp_path / "empty").mkdir()
    root = ensure_scenes(1, seed=0, size=100, out=tmp_path / "empty")
    assert (root / "scenes.json").is_file()
    with pytest.raises(FileExistsError):
        ensure_scenes(2, seed=0, size=100, out=root)  # same folder, other parameters


def test_read_back_through_the_voc_loader(tmp_path: Path, fake_items: list[str]) -> None:
    root = ensure_scenes(2, seed=3, size=150, val_images=2, out=tmp_path / "s")
    train = build_dataset("scenes", "train", task="segmentation", root=root)
    val = build_dataset("scenes", "val", task="detection", root=root, image_size=75)
    assert len(train) == 2 and len(val) == 2
    image, target = train[1]
    assert image.shape == (3, 150, 150) and set(target) == {"mask", "boxes", "labels", "iscrowd"}
    scene = compose_scene(
        scenes_module.scene_rng(3, "train", 1),
        150,
        *(t.numpy() for t in fake_fashion_mnist()),
        scene_layout(DEFAULT_LAYOUT),  # what ensure_scenes builds by default
    )
    np.testing.assert_array_equal(target["mask"].numpy(), scene.mask)  # PNG is lossless
    np.testing.assert_array_equal(target["boxes"].numpy(), scene.boxes.astype(np.float32))
    np.testing.assert_array_equal(target["labels"].numpy(), scene.labels)
    jpeg_error = np.abs(image.permute(1, 2, 0).numpy() * 255 - scene.image.astype(np.float32))
    assert jpeg_error.mean() < 2.0  # JPEG quality 95, 4:4:4
    small_image, small = val[0]
    assert small_image.shape == (3, 75, 75) and small["mask"].shape == (75, 75)
    assert small["boxes"].canvas_size == (75, 75)


def test_noisy_variant_is_fixed_per_image(tmp_path: Path, fake_items: list[str]) -> None:
    root = ensure_scenes(2, seed=0, size=100, out=tmp_path / "s")
    clean = build_dataset("scenes", "train", task="segmentation", root=root)
    noisy = build_dataset("scenes", "train", task="segmentation", root=root, variant="noisy")
    again = build_dataset("scenes", "train", task="segmentation", root=root, variant="noisy")
    assert torch.equal(noisy[0][0], again[0][0]) and torch.equal(noisy[0][0], noisy[0][0])
    assert not torch.equal(noisy[0][0], noisy[1][0])
    difference = noisy[0][0] - clean[0][0]
    unclipped = (noisy[0][0] > 0) & (noisy[0][0] < 1)
    assert abs(float(difference[unclipped].std()) - 0.15) < 0.02
    assert torch.equal(noisy[0][1]["mask"], clean[0][1]["mask"])
    other_seed = build_dataset(
        "scenes", "train", task="segmentation", root=root, variant="noisy", noise_seed=9
    )
    assert not torch.equal(noisy[0][0], other_seed[0][0])


def test_default_root_builds_under_the_data_dir(fake_items: list[str]) -> None:
    dataset = build_dataset("scenes", "val", task="detection", images=2, val_images=1, size=100)
    assert len(dataset) == 1
    assert any((paths.data_dir() / "scenes").iterdir())


def test_real_sources_build(tmp_path: Path) -> None:
    """Fashion-MNIST from this machine (Debian package or its env variable), real photos."""
    try:
        scenes_module.load_fashion_mnist("test")
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST idx files are not installed")
    root = ensure_scenes(1, seed=0, size=100, val_images=1, out=tmp_path / "real")
    image, target = build_dataset("scenes", "val", task="segmentation", root=root)[0]
    assert image.shape == (3, 100, 100) and int((target["mask"] > 0).sum()) > 0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"images": 0}, ValueError, "at least one train"),
        ({"images": 2, "val_images": 0}, ValueError, "at least one train"),
        ({"images": 2, "seed": -1}, ValueError, "seed"),
        ({"images": 2, "size": 20}, ValueError, "smaller than one grid cell"),
        ({"images": 2.5}, TypeError, "images must be an int"),
    ],
)
def test_bad_build_arguments(kwargs: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        ensure_scenes(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"item_size": (24, 60)}, "fit their cells"),
        ({"occupancy": 1.5}, "occupancy"),
        ({"opaque_alpha": 0.1}, "transparent_alpha < opaque_alpha"),
        ({"background_crop": (0.0, 1.0)}, "background_crop"),
    ],
)
def test_scene_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SceneConfig(**kwargs)


def test_manifest_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"scenes\.json"):
        build_dataset("scenes", "train", task="segmentation", root=tmp_path)
    (tmp_path / "scenes.json").write_text("{oops")
    with pytest.raises(CorruptFileError, match=r"scenes\.json"):
        read_manifest(tmp_path)
    (tmp_path / "scenes.json").write_text('{"format": "something-else"}')
    with pytest.raises(CorruptFileError, match="is not a downsizenet-scenes manifest"):
        read_manifest(tmp_path)


def test_named_layouts_set_item_sizes_and_unknown_names_are_refused() -> None:
    items, classes = (t.numpy() for t in fake_fashion_mnist())
    for name, (low, high), most in (("large", (48, 72), 16), ("small", (24, 40), 36)):
        config = scene_layout(name)
        assert config.item_size == (low, high) and config is SCENE_LAYOUTS[name]
        scene = compose_scene(scenes_module.scene_rng(0, "train", 0), 300, items, classes, config)
        sides = np.maximum(
            scene.boxes[:, 2] - scene.boxes[:, 0], scene.boxes[:, 3] - scene.boxes[:, 1]
        )
        assert 0 < len(scene.boxes) <= most and sides.max() <= high
    assert DEFAULT_LAYOUT == "large"
    with pytest.raises(ValueError, match="Unknown scene layout 'huge'"):
        scene_layout("huge")
