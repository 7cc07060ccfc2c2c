"""Nothing outside ``$DOWNSIZENET_HOME/hub`` is written or deleted through a link: a namespace,
a name or the version store that links outside the hub is refused with one line naming it, and
removing a linked name removes the link only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from downsizenet_hub import DownsizeNet, paths
from downsizenet_hub.hub import (
    from_pretrained,
    list_published,
    publish,
    remove,
    save_pretrained,
)

from helpers import snapshot


def tiny(channels: int = 4) -> DownsizeNet:
    return DownsizeNet(conv_layers=1, channels=channels, init="random")


# Whatever the package ships, these tests see only their own local hub.
pytestmark = pytest.mark.usefixtures("shipped")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the hub holding a resizer and a stray file: must never change."""
    folder = tmp_path / "outside"
    save_pretrained(tiny(), folder / "x")
    (folder / "keep.txt").write_text("mine")
    return folder


def one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_namespace_linking_outside_is_refused(outside: Path) -> None:
    paths.hub_dir().mkdir(parents=True)
    link = paths.hub_dir() / "evil"
    link.symlink_to(outside)
    before = snapshot(outside)
    for action in (
        lambda: publish(tiny(), "evil/new"),
        lambda: publish(tiny(), "evil/x", force=True),
        lambda: remove("evil/x"),
        lambda: from_pretrained("evil/x"),
    ):
        with pytest.raises(ValueError) as error:
            action()
        assert one_line(error).startswith(f"{link} is a link to {outside}, outside the local hub")
    assert [(e.name, e.problem is not None) for e in list_published()] == [("evil/x", True)]
    assert snapshot(outside) == before
    assert link.is_symlink()


def test_a_name_linking_outside_is_refused_and_removing_it_removes_the_link_only(
    outside: Path,
) -> None:
    publish(tiny(), "me/ok")
    link = paths.hub_dir() / "me" / "x"
    link.symlink_to(outside / "x")
    before = snapshot(outside)
    with pytest.raises(FileExistsError):
        publish(tiny(), "me/x")
    with pytest.raises(ValueError) as error:
        publish(tiny(), "me/x", force=True)
    assert one_line(error).startswith(f"{link} is a link to {outside / 'x'}, outside")
    with pytest.raises(ValueError, match="outside the local hub"):
        from_pretrained("me/x")
    (entry,) = [e for e in list_published() if e.name == "me/x"]
    assert "outside the local hub" in (entry.problem or "")

    assert remove("me/x") == link
    assert not os.path.lexists(link)
    assert snapshot(outside) == before
    assert [e.name for e in list_published()] == ["me/ok"]  # gone, and nothing hidden left
    assert sorted(p.name for p in (paths.hub_dir() / "me").iterdir()) == [".versions", "ok"]
    publish(tiny(), "me/x")  # the name is free again, inside the hub
    assert snapshot(outside) == before


def test_a_version_store_linking_outside_is_refused(outside: Path) -> None:
    namespace = paths.hub_dir() / "me"
    namespace.mkdir(parents=True)
    (namespace / ".versions").symlink_to(outside)
    (namespace / ".x.link-0123").symlink_to(".versions/x")  # a pending link into it
    before = snapshot(outside)
    with pytest.raises(ValueError, match=r"\.versions is not a folder"):
        publish(tiny(), "me/new")
    assert list_published() == []
    with pytest.raises(FileNotFoundError):
        from_pretrained("me/x")
    assert snapshot(outside) == before


def test_remove_of_a_broken_link_removes_it() -> None:
    publish(tiny(), "me/ok")
    link = paths.hub_dir() / "me" / "gone"
    link.symlink_to(paths.hub_dir() / "me" / "nowhere")
    (entry,) = [e for e in list_published() if e.name == "me/gone"]
    assert "broken link" in (entry.problem or "")
    remove("me/gone")
    assert not os.path.lexists(link)


def test_a_namespace_that_is_a_file_is_refused() -> None:
    paths.hub_dir().mkdir(parents=True)
    (paths.hub_dir() / "me").write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        publish(tiny(), "me/a")
    with pytest.raises(FileNotFoundError):
        remove("me/a")
    assert (paths.hub_dir() / "me").read_text() == "not a folder"
