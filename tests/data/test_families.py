"""Scene families: A and B share no object class and no background photograph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from downsizenet_hub.data.composition import BACKGROUNDS, SCENE_FAMILIES, scene_layout


def test_families_a_and_b_share_no_class_and_no_photograph() -> None:
    (classes_a, photos_a), (classes_b, photos_b) = SCENE_FAMILIES["A"], SCENE_FAMILIES["B"]
    assert classes_a is not None and classes_b is not None
    assert photos_a is not None and photos_b is not None
    assert not set(classes_a) & set(classes_b) and set(classes_a) | set(classes_b) == set(range(10))
    assert not set(photos_a) & set(photos_b)
    assert set(photos_a) | set(photos_b) == {name for _, name, _ in BACKGROUNDS}
    assert scene_layout("large", "all") == scene_layout("large")  # the default is every scene


@pytest.mark.parametrize("family", ["A", "B"])
def test_a_family_s_scenes_hold_only_its_classes(
    tmp_path: Path, fake_items: list[str], family: str
) -> None:
    from downsizenet_hub.data import build_dataset, ensure_scenes

    config = scene_layout("small", family)
    root = ensure_scenes(6, seed=0, size=100, config=config, out=tmp_path / family)
    classes = SCENE_FAMILIES[family][0]
    assert classes is not None
    allowed = {c + 1 for c in classes}
    dataset = build_dataset("scenes", "train", task="detection", root=root)
    seen = set()
    for index in range(len(dataset)):
        _, target = dataset[index]
        seen |= set(target["labels"].tolist())
        mask = np.unique(target["mask"].numpy() if "mask" in target else [0])
        assert set(mask.tolist()) <= allowed | {0, 255}
    assert seen and seen <= allowed
