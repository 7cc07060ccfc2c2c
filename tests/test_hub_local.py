"""The local hub: publish / list / show / remove, reference resolution, and atomicity: every
failure leaves the hub's files exactly as they were."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from downsizenet_hub import DownsizeNet, paths
from downsizenet_hub.hub import (
    TrainingRecord,
    files,
    from_pretrained,
    list_published,
    publish,
    remove,
    resolve,
    save_pretrained,
    show,
    store,
)

from helpers import snapshot, training_record


def tiny(channels: int = 4) -> DownsizeNet:
    return DownsizeNet(conv_layers=1, channels=channels, init="random")


def record() -> TrainingRecord:
    return training_record(
        baseline_score=0.4, scale_factor=None, output_size=(32, 32), input_size=(64, 64)
    )


def outputs(model: DownsizeNet) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.linspace(0, 1, 3 * 12 * 12).view(1, 3, 12, 12), scale_factor=0.5)


# Whatever the package ships, these tests see only their own local hub.
pytestmark = pytest.mark.usefixtures("shipped")


# ---------------------------------------------------------------------------- the happy path
def test_publish_list_show_remove() -> None:
    model = tiny()
    folder = publish(model, "me/first", record=record())
    assert folder == paths.hub_dir() / "me" / "first"
    assert torch.equal(outputs(from_pretrained("me/first")), outputs(model))

    (entry,) = list_published()
    assert (entry.name, entry.source, entry.path, entry.problem) == (
        "me/first",
        "local",
        folder,
        None,
    )
    assert entry.config == model.config and entry.record == record()
    assert entry.date == record().date
    assert entry.size_bytes == sum(p.stat().st_size for p in folder.iterdir())

    card = show("me/first")
    assert card == (folder / "README.md").read_text()
    assert 'DownsizeNet.from_pretrained("me/first")' in card

    assert remove("me/first") == folder
    assert list_published() == []
    assert not (paths.hub_dir() / "me").exists()  # the emptied namespace goes too
    with pytest.raises(FileNotFoundError, match="no resizer named me/first"):
        remove("me/first")


def test_publish_leaves_no_temporaries() -> None:
    publish(tiny(), "me/a")
    publish(tiny(), "me/a", force=True)
    namespace = paths.hub_dir() / "me"
    (version,) = (namespace / ".versions").iterdir()  # the replaced version is deleted
    assert os.readlink(namespace / "a") == f".versions/{version.name}"
    assert sorted(snapshot(paths.hub_dir())) == [
        "me",
        "me/.versions",
        f"me/.versions/{version.name}",
        f"me/.versions/{version.name}/README.md",
        f"me/.versions/{version.name}/config.json",
        f"me/.versions/{version.name}/model.safetensors",
        "me/a",
    ]


def test_published_folders_and_files_have_ordinary_permissions() -> None:
    os.umask(old_umask := os.umask(0o077))  # a private umask must not leak into the hub
    try:
        folder = publish(tiny(), "me/a")
    finally:
        os.umask(old_umask)
    real = folder.resolve()
    assert real.stat().st_mode & 0o777 == 0o755
    assert sorted(p.stat().st_mode & 0o777 for p in real.iterdir()) == [0o644] * 3


def test_force_replaces_the_resizer() -> None:
    publish(tiny(4), "me/a", record=record())
    replacement = tiny(6)
    publish(replacement, "me/a", force=True)
    loaded = from_pretrained("me/a")
    assert loaded.config.channels == 6
    assert torch.equal(outputs(loaded), outputs(replacement))
    assert list_published()[0].record is None


# ---------------------------------------------------------------- refusals leave the hub unchanged
def test_existing_name_is_not_overwritten_without_force() -> None:
    publish(tiny(), "me/a")
    before = snapshot(paths.home())
    with pytest.raises(FileExistsError, match=r"already in the local hub.*force=True"):
        publish(tiny(6), "me/a")
    assert snapshot(paths.home()) == before


@pytest.mark.parametrize(
    "name", ["../escape", "me/../../x", "/tmp/abs", "me//x", "me/", "a/b/c", ".."]
)
def test_traversal_and_malformed_names_touch_nothing(name: str, tmp_path: Path) -> None:
    publish(tiny(), "me/a")
    before, around = snapshot(paths.home()), snapshot(tmp_path)
    for action in (lambda: publish(tiny(), name), lambda: remove(name)):
        with pytest.raises(ValueError, match="invalid resizer name"):
            action()
    assert snapshot(paths.home()) == before
    assert snapshot(tmp_path) == around


def _fail(*args: object, **kwargs: object) -> None:
    raise RuntimeError("injected failure")


@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("stage", ["write_card", "write_weights", "load_folder"])
def test_failure_mid_publish_leaves_the_hub_unchanged(
    monkeypatch: pytest.MonkeyPatch, existing: bool, stage: str
) -> None:
    if existing:
        publish(tiny(), "me/a", record=record())
    before = snapshot(paths.home())
    monkeypatch.setattr(files, stage, _fail)
    with pytest.raises(RuntimeError, match="injected failure"):
        publish(tiny(6), "me/a", force=True)
    assert snapshot(paths.home()) == before


def test_failure_at_the_commit_restores_the_old_resizer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = tiny()
    publish(old, "me/a")
    before = snapshot(paths.home())
    real_replace = os.replace

    def replace(source: str | Path, target: str | Path) -> None:
        if ".link-" in str(source):
            raise OSError("injected rename failure")
        real_replace(source, target)

    monkeypatch.setattr(store.os, "replace", replace)
    with pytest.raises(OSError, match="injected rename failure"):
        publish(tiny(6), "me/a", force=True)
    monkeypatch.setattr(store.os, "replace", real_replace)
    assert snapshot(paths.home()) == before
    assert torch.equal(outputs(from_pretrained("me/a")), outputs(old))


def test_leftovers_of_the_original_layout_are_put_right_at_once() -> None:
    """Left by a downsizenet-hub before the pointers: no timer, the next listing decides. A
    whole old version set aside, with its name absent, goes back; the rest is deleted."""
    old = tiny()
    namespace = paths.hub_dir() / "me"
    save_pretrained(old, namespace / ".a.replaced-0123abcd")  # killed between its renames
    (namespace / ".a.publishing-x_1").mkdir()
    (namespace / ".b.removing-89ab").mkdir()
    (namespace / ".b.removing-89ab" / "config.json").write_text("{}")
    save_pretrained(tiny(), namespace / ".c.replaced-0123abcd")  # c is absent but this is not
    (namespace / ".c.replaced-0123abcd" / "README.md").unlink()  # whole: a half-deleted version
    assert [entry.name for entry in list_published()] == ["me/a"]
    assert sorted(p.name for p in namespace.iterdir()) == ["a"]
    assert torch.equal(outputs(from_pretrained("me/a")), outputs(old))


def test_an_old_version_left_aside_after_a_finished_replace_is_deleted() -> None:
    publish(tiny(), "me/a")
    new = tiny(6)
    publish(new, "me/a", force=True)
    namespace = paths.hub_dir() / "me"
    save_pretrained(tiny(), namespace / ".a.replaced-0123abcd")  # killed before deleting it
    publish(tiny(), "me/other")
    assert sorted(p.name for p in namespace.iterdir()) == [".versions", "a", "other"]
    assert torch.equal(outputs(from_pretrained("me/a")), outputs(new))


def test_names_in_the_original_layout_load_and_are_replaced_and_removed() -> None:
    old, new = tiny(), tiny(6)
    save_pretrained(old, paths.hub_dir() / "me" / "a")  # a plain folder
    assert torch.equal(outputs(from_pretrained("me/a")), outputs(old))
    assert [(e.name, e.problem) for e in list_published()] == [("me/a", None)]
    publish(new, "me/a", force=True)
    assert (paths.hub_dir() / "me" / "a").is_symlink()
    assert torch.equal(outputs(from_pretrained("me/a")), outputs(new))
    assert sorted(p.name for p in (paths.hub_dir() / "me").iterdir()) == [".versions", "a"]
    save_pretrained(old, paths.hub_dir() / "me" / "b")
    remove("me/b")
    assert sorted(p.name for p in (paths.hub_dir() / "me").iterdir()) == [".versions", "a"]


def test_publish_refuses_non_resizers() -> None:
    with pytest.raises(TypeError, match="expects a resizer of a storable architecture"):
        publish(torch.nn.Linear(2, 2), "me/a")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="TrainingRecord"):
        publish(tiny(), "me/a", record={"task": "x"})  # type: ignore[arg-type]
    assert snapshot(paths.home()) == {}


# ---------------------------------------------------------------------------- listing
def test_list_reports_unreadable_entries_and_skips_temporaries() -> None:
    publish(tiny(), "me/good")
    publish(tiny(), "me/bad")
    config = paths.hub_dir() / "me" / "bad" / "config.json"
    config.write_text(json.dumps({"format_version": 9, "downsizenet": {}}))
    (paths.hub_dir() / "me" / ".good.publishing-123").mkdir()
    (paths.hub_dir() / "stray.txt").write_text("x")
    entries = {entry.name: entry for entry in list_published()}
    assert sorted(entries) == ["me/bad", "me/good"]
    assert entries["me/good"].problem is None
    assert entries["me/bad"].config is None
    assert "format_version 9" in (entries["me/bad"].problem or "")


def test_list_includes_shipped_resizers_after_local_ones(shipped: Path) -> None:
    save_pretrained(tiny(), shipped / "downsizenet" / "demo", record=record())
    publish(tiny(), "me/local")
    assert [(e.name, e.source) for e in list_published()] == [
        ("me/local", "local"),
        ("downsizenet/demo", "shipped"),
    ]


def test_shipped_resizers_cannot_be_removed(shipped: Path) -> None:
    save_pretrained(tiny(), shipped / "downsizenet" / "demo")
    with pytest.raises(ValueError, match="shipped with downsizenet-hub"):
        remove("downsizenet/demo")
    assert (shipped / "downsizenet" / "demo" / "model.safetensors").is_file()


# ---------------------------------------------------------------------------- resolution order
def test_resolution_order_directory_local_shipped(
    shipped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_shipped, in_local, in_directory = tiny(3), tiny(4), tiny(5)
    save_pretrained(in_shipped, shipped / "me" / "a")
    assert resolve("me/a").source == "shipped"
    publish(in_local, "me/a")
    assert resolve("me/a").source == "local"
    workdir = tmp_path / "work"
    save_pretrained(in_directory, workdir / "me" / "a")
    monkeypatch.chdir(workdir)
    assert resolve("me/a").source == "directory"
    assert from_pretrained("me/a").config.channels == 5
    monkeypatch.chdir(tmp_path)
    assert from_pretrained("me/a").config.channels == 4
    remove("me/a")
    assert from_pretrained("me/a").config.channels == 3


def test_nothing_found_lists_what_was_tried(shipped: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        from_pretrained("nobody/nothing")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "no resizer found for 'nobody/nothing'; tried: directory nobody/nothing"
    )
    assert str(paths.hub_dir() / "nobody" / "nothing") in message
    assert str(shipped / "nobody" / "nothing") in message
    assert message.endswith("for the Hugging Face Hub, write hf-hub:nobody/nothing.")


def test_a_reference_that_is_neither_path_nor_name() -> None:
    with pytest.raises(FileNotFoundError, match="not a hub name"):
        from_pretrained("./no/such/dir")
    with pytest.raises(ValueError, match="non-empty"):
        from_pretrained("")


def test_show_of_a_folder_without_card(tmp_path: Path) -> None:
    save_pretrained(tiny(), tmp_path)
    (tmp_path / "README.md").unlink()
    with pytest.raises(FileNotFoundError, match="has no model card"):
        show(tmp_path)


# ---------------------------------------------------------------- a live writer is left alone
def test_recovery_never_touches_the_work_of_a_live_writer() -> None:
    """While a process holds the namespace lock (it is publishing), listing does not clean up:
    its half-written version is not a leftover. Once the lock is free, it is."""
    publish(tiny(), "me/a")
    namespace = paths.hub_dir() / "me"
    in_progress = namespace / ".versions" / "b.0123456789ab"
    in_progress.mkdir()
    (in_progress / "config.json").write_text("{}")
    with store.locked(namespace) as held:  # another open file: flock conflicts as across processes
        assert held
        assert [e.name for e in list_published()] == ["me/a"]
        assert in_progress.is_dir()
        with store.locked(namespace, wait=False) as also:
            assert not also
    assert [e.name for e in list_published()] == ["me/a"]
    assert not in_progress.exists()
    assert sorted(p.name for p in (namespace / ".versions").iterdir()) == [
        os.readlink(namespace / "a").split("/")[-1]
    ]
