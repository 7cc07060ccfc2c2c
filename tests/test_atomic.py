"""downsizenet_hub.atomic: whole-file replacement, cleanup on failure, file mode, parent folders."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from downsizenet_hub import atomic
from downsizenet_hub.atomic import write_atomic, write_atomic_path
from downsizenet_hub.engine import checkpoint
from downsizenet_hub.imageio import ImageFileError, LoadedImage, read_image, write_image
from downsizenet_hub.pipelines.feature_cache import CachedFrozenFront

Writer = Callable[[Path, bytes], None]


def by_handle(path: Path, data: bytes) -> None:
    write_atomic(path, lambda handle: handle.write(data))


def by_path(path: Path, data: bytes) -> None:
    write_atomic_path(path, lambda tmp: tmp.write_bytes(data))


WRITERS = pytest.mark.parametrize("writer", [by_handle, by_path], ids=["handle", "path"])


class Boom(Exception):
    pass


def failing_handle(path: Path, error: BaseException) -> None:
    def write(handle: IO[bytes]) -> None:
        handle.write(b"half a file")
        raise error

    write_atomic(path, write)


def failing_path(path: Path, error: BaseException) -> None:
    def write(tmp: Path) -> None:
        tmp.write_bytes(b"half a file")
        raise error

    write_atomic_path(path, write)


FAILING = pytest.mark.parametrize("failing", [failing_handle, failing_path], ids=["handle", "path"])


@WRITERS
def test_replaces_the_file_whole(tmp_path: Path, writer: Writer) -> None:
    path = tmp_path / "data.bin"
    writer(path, b"a much longer first version")
    assert path.read_bytes() == b"a much longer first version"
    writer(path, b"two")
    assert path.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


@FAILING
@pytest.mark.parametrize("error", [Boom("no"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_failure_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, failing: Callable[[Path, BaseException], None], error: BaseException
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"old")
    with pytest.raises(type(error)):
        failing(path, error)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


@FAILING
def test_failure_leaves_nothing_when_the_file_was_absent(
    tmp_path: Path, failing: Callable[[Path, BaseException], None]
) -> None:
    with pytest.raises(Boom, match="first write"):
        failing(tmp_path / "data.bin", Boom("first write"))
    assert list(tmp_path.iterdir()) == []


def test_temporary_is_a_hidden_sibling(tmp_path: Path) -> None:
    path = tmp_path / "weights.safetensors"
    seen: list[Path] = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        tmp.write_bytes(b"x")

    write_atomic_path(path, write)
    (tmp,) = seen
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(".weights.safetensors.") and tmp.name.endswith(".tmp")
    assert not tmp.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
@WRITERS
def test_file_mode_is_0o644(tmp_path: Path, writer: Writer) -> None:
    previous = os.umask(0o077)  # even under a strict umask: mkstemp's 0o600 is widened
    try:
        path = tmp_path / "data.bin"
        writer(path, b"x")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        path.chmod(0o600)
        writer(path, b"y")  # replacing an existing private file gives an ordinary one too
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(previous)


@WRITERS
def test_parent_folders_are_created(tmp_path: Path, writer: Writer) -> None:
    path = tmp_path / "a" / "b" / "data.bin"
    writer(path, b"nested")
    assert path.read_bytes() == b"nested"


def test_accepts_string_paths(tmp_path: Path) -> None:
    write_atomic(str(tmp_path / "one.bin"), lambda handle: handle.write(b"1"))
    write_atomic_path(str(tmp_path / "two.bin"), lambda tmp: tmp.write_bytes(b"2"))
    assert (tmp_path / "one.bin").read_bytes() == b"1"
    assert (tmp_path / "two.bin").read_bytes() == b"2"


def test_engine_checkpoint_re_exports_the_handle_writer() -> None:
    assert checkpoint.write_atomic is write_atomic


# The call sites keep their behaviour on top of the shared helper.


def test_checkpoint_writes_look_the_helper_up_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[Path] = []

    def recording(path: Path, write: Callable[[IO[bytes]], object]) -> None:
        written.append(path)
        write_atomic(path, write)

    monkeypatch.setattr(checkpoint, "write_atomic", recording)
    checkpoint.write_json_atomic(tmp_path / "metrics.json", {"loss": float("nan")})
    assert written == [tmp_path / "metrics.json"]
    assert (tmp_path / "metrics.json").read_text() == '{\n  "loss": null\n}\n'


def _image(tmp_path: Path) -> LoadedImage:
    source = tmp_path / "in.png"
    Image.fromarray(np.zeros((4, 5, 3), dtype=np.uint8)).save(source)
    return read_image(source)


def test_image_write_failure_is_an_image_error_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = _image(tmp_path)
    out = tmp_path / "out"
    target = out / "result.png"
    write_image(target, loaded.pixels, loaded)  # creates the folder
    before = target.read_bytes()

    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        Path(str(fp)).write_bytes(b"half an image")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageFileError, match=r"result\.png: cannot write the image \(disk full\)"):
        write_image(target, loaded.pixels, loaded)
    assert target.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["result.png"]


def test_image_target_that_is_a_folder_is_an_image_error(tmp_path: Path) -> None:
    loaded = _image(tmp_path)
    (tmp_path / "out.png").mkdir()
    with pytest.raises(ImageFileError, match="cannot write the image"):
        write_image(tmp_path / "out.png", loaded.pixels, loaded)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]


def test_image_folder_that_cannot_be_written_is_raised_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not one image's fault: folder_resize lets it stop the run instead of failing each file.
    loaded = _image(tmp_path)

    def no_temporary(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", no_temporary)
    with pytest.raises(PermissionError) as caught:
        write_image(tmp_path / "out.png", loaded.pixels, loaded)
    assert not isinstance(caught.value, ImageFileError)


def test_feature_cache_files_are_whole_ordinary_and_leave_no_temporary(tmp_path: Path) -> None:
    front = nn.Conv2d(3, 2, 1).requires_grad_(False)
    cache = CachedFrozenFront(front, directory=tmp_path)
    cache(torch.rand(2, 3, 4, 4))
    assert cache.directory is not None
    names = sorted(p.name for p in cache.directory.iterdir())
    assert len(names) == 2 and all(n.endswith(".safetensors") for n in names)
    for name in names:
        path = cache.directory / name
        assert load_file(str(path))["features"].shape == (2, 4, 4)
        if sys.platform != "win32":
            assert stat.S_IMODE(path.stat().st_mode) == 0o644


# ------------------------------------------------------------- leftovers of killed processes
#: Above Linux's largest possible pid (PID_MAX_LIMIT = 2**22): never a live process.
DEAD_PID = 2**22 + 1


def test_temporary_names_carry_the_pid(tmp_path: Path) -> None:
    seen: list[str] = []

    def spy(handle: IO[bytes]) -> None:
        seen.extend(p.name for p in tmp_path.iterdir())
        handle.write(b"x")

    write_atomic(tmp_path / "f.bin", spy)
    assert seen[0].startswith(f".f.bin.{os.getpid()}-") and seen[0].endswith(".tmp")


def test_stale_temporaries_of_dead_processes_only_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint.pt"
    dead = tmp_path / f".checkpoint.pt.{DEAD_PID}-abc_12.tmp"
    mine = tmp_path / f".checkpoint.pt.{os.getpid()}-def.tmp"
    init = tmp_path / ".checkpoint.pt.1-ghi.tmp"  # pid 1 always runs
    old_style = tmp_path / ".checkpoint.pt.q1w2e3r4.tmp"  # no pid: cannot tell, left alone
    other = tmp_path / f".metrics.json.{DEAD_PID}-abc.tmp"  # another target's
    for path in (dead, mine, init, old_style, other):
        path.write_bytes(b"half")
    assert atomic.remove_stale_temporaries(target) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (mine, init, old_style, other)
    )


def test_a_new_run_cleans_the_temporaries_a_killed_run_left(tmp_path: Path) -> None:
    dead_checkpoint = tmp_path / f".checkpoint.pt.{DEAD_PID}-k1ll.tmp"
    dead_metrics = tmp_path / f".metrics.json.{DEAD_PID}-k1ll.tmp"
    live = tmp_path / f".checkpoint.pt.{os.getpid()}-l1ve.tmp"
    for path in (dead_checkpoint, dead_metrics, live):
        path.write_bytes(b"half")
    checkpoint.write_metrics_json(
        tmp_path / checkpoint.METRICS_NAME,
        status="running",
        error=None,
        history=[],
        config=checkpoint.TrainConfig(),
        recipe=None,
        world_size=1,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "metrics.json"])
    dead_checkpoint.write_bytes(b"half")
    checkpoint.save_checkpoint(
        tmp_path / checkpoint.CHECKPOINT_NAME,
        checkpoint.TrainingState(1, 0, 1, {}, None, {}, {}, {}, {}, []),
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, "checkpoint.pt", "metrics.json"]
    )


def test_publish_folder_renames_a_complete_folder_into_place_or_leaves_nothing(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out" / "resizer"

    def fill(staging: Path) -> None:
        assert staging.parent == target.parent and staging.name.endswith(".partial")
        (staging / "config.json").write_text("{}")

    assert atomic.publish_folder(target, fill) == target
    assert (target / "config.json").read_text() == "{}"
    assert stat.S_IMODE(target.stat().st_mode) == 0o755

    def fail(staging: Path) -> None:
        (staging / "half").write_text("x")
        raise RuntimeError("stopped")

    other = tmp_path / "out" / "other"
    with pytest.raises(RuntimeError, match="stopped"):
        atomic.publish_folder(other, fail)
    assert sorted(p.name for p in other.parent.iterdir()) == ["resizer"]  # no partial folder
    # A complete folder already there: kept when done() says so, else the rename's error.
    assert atomic.publish_folder(target, fill, done=lambda path: True) == target
    with pytest.raises(OSError):
        atomic.publish_folder(target, fill)


def test_text_and_json_are_written_one_way(tmp_path: Path) -> None:
    atomic.write_json_atomic(tmp_path / "a.json", {"b": [1, "é"]})
    assert (tmp_path / "a.json").read_text(encoding="utf-8") == (
        '{\n  "b": [\n    1,\n    "\\u00e9"\n  ]\n}\n'
    )
    atomic.write_text_atomic(tmp_path / "t.md", "é\n")
    assert (tmp_path / "t.md").read_bytes() == "é\n".encode()


def test_flock_is_exclusive_and_a_shared_probe_sees_it(tmp_path: Path) -> None:
    from downsizenet_hub import flock

    path = tmp_path / "x.lock"
    with pytest.raises(FileNotFoundError):
        flock.acquire(path)
    held = flock.acquire(path, create=True)
    assert held is not None
    assert flock.acquire(path) is None and flock.acquire(path, shared=True) is None
    flock.release(held)
    probe = flock.acquire(path, shared=True)
    assert probe is not None
    flock.release(probe)
    folder = flock.acquire(tmp_path, directory=True)
    assert folder is not None and flock.acquire(tmp_path, directory=True) is None
    flock.release(folder)
