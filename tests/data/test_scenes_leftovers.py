"""A scenes build killed outright leaves its ``.partial`` staging folder; the next build of that
root deletes it once its process is gone, and never the staging folder of a live build."""

from __future__ import annotations

import os
from pathlib import Path

from downsizenet_hub.data import SceneConfig, ensure_scenes

#: Above Linux's largest possible pid (PID_MAX_LIMIT = 2**22): never a live process.
DEAD_PID = 2**22 + 1


def test_the_next_build_deletes_partial_folders_of_dead_builds_only(
    tmp_path: Path, fake_items: list[str]
) -> None:
    out = tmp_path / "scenes"
    dead = tmp_path / f".scenes.{DEAD_PID}-k1ll3d.partial"
    live = tmp_path / f".scenes.{os.getpid()}-w0rk1ng.partial"
    old_style = tmp_path / ".scenes.abc123.partial"  # no pid: cannot tell, left alone
    for folder in (dead, live, old_style):
        (folder / "VOCdevkit").mkdir(parents=True)
        (folder / "VOCdevkit" / "half.jpg").write_bytes(b"x")
    root = ensure_scenes(2, seed=1, size=100, val_images=1, config=SceneConfig(), out=out)
    assert root == out and (out / "scenes.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, old_style.name, "scenes"]
    )
