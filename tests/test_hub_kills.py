"""A process killed at any step of publish, forced publish or removal: the next command sees the
old or the new resizer, whole, and a removal stays removed.

Each change on disk of the hub is followed by a call to ``store.step``. A kill at step k is
simulated exactly: the hook copies the hub as it is at that moment (no cleanup has run, as after
SIGKILL) and stops the process with a BaseException; the test then puts that copy in place of the
hub and runs the next commands. The same steps, with the exception left to propagate (Ctrl-C),
must leave the hub old or new as well.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from downsizenet_hub import DownsizeNet, paths
from downsizenet_hub.hub import (
    from_pretrained,
    list_published,
    local,
    publish,
    remove,
    save_pretrained,
    store,
)
from downsizenet_hub.hub.files import CARD_FILE


class Killed(BaseException):
    """Stops a command at a step, as a kill would."""


def tiny(channels: int) -> DownsizeNet:
    return DownsizeNet(conv_layers=1, channels=channels, init="random")


OLD, NEW = tiny(4), tiny(6)


def outputs(model: DownsizeNet) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.linspace(0, 1, 3 * 12 * 12).view(1, 3, 12, 12), scale_factor=0.5)


# Whatever the package ships, these tests see only their own local hub.
pytestmark = pytest.mark.usefixtures("shipped")


def state(name: str) -> str:
    """'old', 'new' or 'absent' as loading ``name`` sees it; fails on anything else (a mix, a
    version without its card, ...)."""
    try:
        loaded = from_pretrained(name)
    except FileNotFoundError as error:
        assert "no resizer found" in str(error)
        return "absent"
    folder = local.local_path(name)
    card = (folder / CARD_FILE).read_text()
    assert f'DownsizeNet.from_pretrained("{name}")' in card
    for label, model in (("old", OLD), ("new", NEW)):
        if loaded.config == model.config and torch.equal(outputs(loaded), outputs(model)):
            return label
    raise AssertionError(f"{name} loads neither the old nor the new resizer")


def hidden_leftovers(namespace: Path) -> list[str]:
    """What is in ``namespace`` besides its names and the versions they point to."""
    if not namespace.exists():
        return []
    referenced = {os.path.realpath(p) for p in namespace.iterdir() if p.is_symlink()}
    left = [p.name for p in namespace.iterdir() if p.name.startswith(".") and p.name != ".versions"]
    versions = namespace / ".versions"
    if versions.exists():
        left += [v.name for v in versions.iterdir() if os.path.realpath(v) not in referenced]
    return sorted(left)


def count_steps(action: Callable[[], object], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    labels: list[str] = []
    with monkeypatch.context() as patch:
        patch.setattr(store, "step", labels.append)
        action()
    return labels


def killed_at(
    k: int, action: Callable[[], object], monkeypatch: pytest.MonkeyPatch, frozen: Path
) -> str:
    """Run ``action`` until step ``k``; copy the hub there into ``frozen``; return the label."""
    calls = 0

    def step(label: str) -> None:
        nonlocal calls
        calls += 1
        if calls == k + 1:  # once: the cleanup that the exception runs steps on
            shutil.copytree(paths.hub_dir(), frozen, symlinks=True)
            raise Killed(label)

    with monkeypatch.context() as patch:
        patch.setattr(store, "step", step)
        with pytest.raises(Killed) as killed:
            action()
    return str(killed.value)


def restore(frozen: Path) -> None:
    shutil.rmtree(paths.hub_dir())
    shutil.copytree(frozen, paths.hub_dir(), symlinks=True)
    shutil.rmtree(frozen)


def setup_old(layout: str) -> None:
    if layout == "link":
        publish(OLD, "me/a")
    else:  # the original layout: a plain folder, as published before the pointers
        save_pretrained(OLD, paths.hub_dir() / "me" / "a", name="me/a")
    publish(tiny(3), "me/other")  # a neighbour that must never change


SCENARIOS = {
    # name: (layout of the old version or None, the action, states before and after)
    "publish": (None, lambda: publish(NEW, "me/a"), ("absent", "new")),
    "force-link": ("link", lambda: publish(NEW, "me/a", force=True), ("old", "new")),
    "force-plain": ("plain", lambda: publish(NEW, "me/a", force=True), ("old", "new")),
    "remove-link": ("link", lambda: remove("me/a"), ("old", "absent")),
    "remove-plain": ("plain", lambda: remove("me/a"), ("old", "absent")),
}


def prepare(scenario: str) -> None:
    layout = SCENARIOS[scenario][0]
    if layout is None:
        publish(tiny(3), "me/other")
    else:
        setup_old(layout)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_kill_at_every_step_leaves_old_or_new_whole_and_removals_stay(
    scenario: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, action, (before, after) = SCENARIOS[scenario]
    prepare(scenario)
    labels = count_steps(action, monkeypatch)
    assert len(labels) >= 3
    shutil.rmtree(paths.hub_dir())

    seen = []
    for k in range(len(labels)):
        prepare(scenario)
        frozen = tmp_path / f"frozen-{k}"
        label = killed_at(k, action, monkeypatch, frozen)
        restore(frozen)
        # Loading, before anything puts the hub right.
        first = state("me/a")
        assert first in (before, after), (k, label, first)
        # The next command that changes or lists the namespace: the same answer, nothing hidden.
        assert {e.name for e in list_published()} == {"me/other"} | (
            {"me/a"} if first != "absent" else set()
        ), (k, label)
        assert all(e.problem is None for e in list_published())
        assert state("me/a") == first, (k, label)
        assert hidden_leftovers(paths.hub_dir() / "me") == [], (k, label)
        assert from_pretrained("me/other").config.channels == 3
        seen.append(first)
        # A removal now stays removed, whatever comes next.
        if first != "absent":
            remove("me/a")
        publish(tiny(5), "me/third")
        list_published()
        assert state("me/a") == "absent", (k, label)
        shutil.rmtree(paths.hub_dir())
    # Committed once, never undone: the states seen step by step run old...old, new...new.
    assert seen == sorted(seen, key=lambda s: s == after), seen
    assert seen[-1] == after


def interrupt_at(k: int) -> Callable[[str], None]:
    calls = 0

    def step(label: str) -> None:
        nonlocal calls
        calls += 1
        if calls == k + 1:
            raise KeyboardInterrupt(label)

    return step


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_an_exception_at_every_step_leaves_old_or_new_and_no_garbage(
    scenario: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (an exception) at each step: cleanup runs, so nothing is left even before the
    next command."""
    _, action, (before, after) = SCENARIOS[scenario]
    prepare(scenario)
    labels = count_steps(action, monkeypatch)
    shutil.rmtree(paths.hub_dir())
    for k in range(len(labels)):
        prepare(scenario)
        with monkeypatch.context() as patch:
            patch.setattr(store, "step", interrupt_at(k))
            with pytest.raises(KeyboardInterrupt):
                action()
        seen = state("me/a")
        assert seen in (before, after), (k, labels[k])
        if seen == before:  # not committed: rolled back completely
            assert hidden_leftovers(paths.hub_dir() / "me") == [], (k, labels[k])
        assert {e.name for e in list_published()} >= {"me/other"}
        assert hidden_leftovers(paths.hub_dir() / "me") == [], (k, labels[k])
        shutil.rmtree(paths.hub_dir())


def test_the_reported_case_a_kill_in_the_cleanup_of_a_force_then_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 while the old version is being deleted after a successful --force, then
    ``hub remove``: the name stays removed (it came back ten minutes later before)."""
    publish(OLD, "me/a")
    action = lambda: publish(NEW, "me/a", force=True)  # noqa: E731
    labels = count_steps(action, monkeypatch)
    deletions = [k for k, label in enumerate(labels) if label.startswith("deleted")]
    assert deletions  # the old version is deleted one file at a time
    shutil.rmtree(paths.hub_dir())
    publish(OLD, "me/a")
    killed_at(deletions[1], action, monkeypatch, tmp_path / "frozen")
    restore(tmp_path / "frozen")
    assert state("me/a") == "new"
    remove("me/a")
    for _ in range(2):
        assert list_published() == []
        assert state("me/a") == "absent"
    assert not (paths.hub_dir() / "me").exists()


CHILD = """
import os, sys
from downsizenet_hub import DownsizeNet
from downsizenet_hub.hub import publish, store

import torch

seed, label, skip = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
torch.manual_seed(seed)
new = DownsizeNet(conv_layers=1, channels=6, init="random")
seen = 0

def step(at: str) -> None:
    global seen
    if at == label:
        seen += 1
        if seen > skip:
            os._exit(9)  # no finally, no atexit: as SIGKILL

store.step = step
publish(new, "me/a", force=True)
os._exit(0)
"""


@pytest.mark.parametrize(
    ("layout", "label", "skip", "expected"),
    [
        ("plain", "set the plain folder aside", 0, "new"),  # between the two renames
        ("link", "made the pending link", 0, "old"),
        ("link", "deleted a file", 1, "new"),  # deleting the replaced version
    ],
)
def test_a_real_process_killed_mid_publish(
    layout: str, label: str, skip: int, expected: str, tmp_path: Path
) -> None:
    if layout == "link":
        publish(OLD, "me/a")
    else:
        save_pretrained(OLD, paths.hub_dir() / "me" / "a", name="me/a")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    torch.manual_seed(7)
    new = tiny(6)
    child = subprocess.run(
        [sys.executable, str(script), "7", label, str(skip)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == 9, child.stderr
    loaded = from_pretrained("me/a")
    reference = new if expected == "new" else OLD
    assert torch.equal(outputs(loaded), outputs(reference))
    assert [e.name for e in list_published()] == ["me/a"]
    assert hidden_leftovers(paths.hub_dir() / "me") == []
    remove("me/a")
    assert list_published() == []
    assert not (paths.hub_dir() / "me").exists()
