"""Faults of the machine: a full disk while publishing or checkpointing, and an output folder that
cannot be written. Each is one line naming the path and the cause, exit code 2 on the command
line, and whatever was there before is intact.

The full disk is simulated by an ``OSError(ENOSPC)`` from every write (always), and is also made
real with a tiny tmpfs where this process may mount one (root), else that test is skipped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from downsizenet_hub import DownsizeNet, atomic, paths
from downsizenet_hub.atomic import WriteError
from downsizenet_hub.cli import app
from downsizenet_hub.engine.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from downsizenet_hub.hub import from_pretrained, publish, save_pretrained

from helpers import assert_one_line_error, snapshot


def tiny(channels: int = 4) -> DownsizeNet:
    return DownsizeNet(conv_layers=1, channels=channels, init="random")


def outputs(model: DownsizeNet) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.linspace(0, 1, 3 * 12 * 12).view(1, 3, 12, 12), scale_factor=0.5)


def training_state(value: float) -> TrainingState:
    return TrainingState(
        epoch=1,
        step=0,
        world_size=1,
        config={},
        recipe=None,
        model={"w": torch.full((64, 64), value)},
        optimizer={},
        scheduler={},
        scaler={},
        history=[],
    )


# Whatever the package ships, these tests see only their own local hub.
pytestmark = pytest.mark.usefixtures("shipped")


class _FullDisk:
    """A file that takes 512 bytes, then fails every write as on a full disk."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._room = 512

    def write(self, data: bytes) -> int:
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return int(self._handle.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


@contextlib.contextmanager
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = os.fdopen
    with monkeypatch.context() as patch:
        patch.setattr(atomic.os, "fdopen", lambda *a, **k: _FullDisk(real(*a, **k)))
        yield


# ------------------------------------------------------------------- a full disk, simulated
def test_publish_force_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = tiny()
    publish(old, "me/a")
    save_pretrained(tiny(6), tmp_path / "new")
    before = snapshot(paths.home())
    with full_disk(monkeypatch):
        result = CliRunner().invoke(
            app, ["hub", "publish", str(tmp_path / "new"), "me/a", "--force"]
        )
    target = paths.hub_dir() / "me" / "a"
    assert_one_line_error(result, f"cannot write {target}: no space left on device")
    assert snapshot(paths.home()) == before
    assert torch.equal(outputs(from_pretrained("me/a")), outputs(old))


def test_a_torch_save_on_a_full_disk_names_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.save swallows the OSError and raises "RuntimeError: unexpected pos"; the recorded
    OSError is reported instead."""
    path = tmp_path / "run" / "checkpoint.pt"
    save_checkpoint(path, training_state(1.0))
    with full_disk(monkeypatch), pytest.raises(WriteError) as error:
        save_checkpoint(path, training_state(2.0))
    assert str(error.value) == f"cannot write {path}: no space left on device"
    assert error.value.errno == errno.ENOSPC
    assert torch.equal(load_checkpoint(path).model["w"], torch.full((64, 64), 1.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]


def test_an_io_error_that_the_writer_swallows_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like torch.save's zip writer: the OSError of a write is caught inside and replaced by
    "RuntimeError: unexpected pos"; write_atomic reports the OSError it saw."""

    def swallowing(handle: Any) -> None:
        with contextlib.suppress(OSError):
            handle.write(b"x" * 4096)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    with full_disk(monkeypatch), pytest.raises(WriteError) as error:
        atomic.write_atomic(tmp_path / "x.pt", swallowing)
    assert str(error.value) == f"cannot write {tmp_path / 'x.pt'}: no space left on device"
    assert list(tmp_path.iterdir()) == []


def test_a_writer_error_that_is_not_io_is_not_disguised(tmp_path: Path) -> None:
    def broken(handle: Any) -> None:
        raise RuntimeError("a bug in the writer")

    with pytest.raises(RuntimeError, match="a bug in the writer"):
        atomic.write_atomic(tmp_path / "x.bin", broken)
    assert list(tmp_path.iterdir()) == []


def test_a_safetensors_io_error_is_translated() -> None:
    class SafetensorError(Exception):
        pass

    error = SafetensorError(
        'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space '
        'left on device" })'
    )
    translated = WriteError.from_error("/x/model.safetensors", error)
    assert str(translated) == "cannot write /x/model.safetensors: no space left on device"


def test_permission_errors_stay_permission_errors(tmp_path: Path) -> None:
    error = WriteError.from_error(tmp_path / "f", PermissionError(errno.EACCES, "denied"))
    assert isinstance(error, PermissionError)
    assert str(error) == f"cannot write {tmp_path / 'f'}: permission denied"


# ------------------------------------------------------------------- a full disk, for real
@contextlib.contextmanager
def mounted_tmpfs(folder: Path, options: str) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"cannot mount a tmpfs here ({error})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def fill(folder: Path) -> None:
    with open(folder / "filler", "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 4096)


def test_a_real_full_disk_under_publish_and_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_pretrained(tiny(6), tmp_path / "new")
    with mounted_tmpfs(tmp_path / "disk", "size=512k") as disk:
        monkeypatch.setenv(paths.HOME_ENV, str(disk / "home"))
        old = tiny()
        publish(old, "me/a")
        checkpoint = disk / "run" / "checkpoint.pt"
        save_checkpoint(checkpoint, training_state(1.0))
        fill(disk)
        before = snapshot(paths.home())

        result = CliRunner().invoke(
            app, ["hub", "publish", str(tmp_path / "new"), "me/a", "--force"]
        )
        assert_one_line_error(
            result, f"cannot write {paths.hub_dir() / 'me' / 'a'}: no space left on device"
        )
        assert snapshot(paths.home()) == before
        assert torch.equal(outputs(from_pretrained("me/a")), outputs(old))

        with pytest.raises(WriteError) as error:
            save_checkpoint(checkpoint, training_state(2.0))
        assert str(error.value) == f"cannot write {checkpoint}: no space left on device"
        assert torch.equal(load_checkpoint(checkpoint).model["w"], torch.full((64, 64), 1.0))
        assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["checkpoint.pt"]


# ------------------------------------------------------------------- an unwritable output folder
def image_folder(folder: Path) -> Path:
    folder.mkdir()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / "a.png")
    return folder


def test_resize_into_a_read_only_folder(tmp_path: Path) -> None:
    inputs = image_folder(tmp_path / "in")
    if os.geteuid() == 0:  # root writes through permissions: only a read-only mount stops it
        context: contextlib.AbstractContextManager[Path] = mounted_tmpfs(tmp_path / "out", "ro")
        cause = "read-only file system"
    else:
        (tmp_path / "out").mkdir(mode=0o555)
        context = contextlib.nullcontext(tmp_path / "out")
        cause = "permission denied"
    with context as out:
        result = CliRunner().invoke(
            app,
            ["resize", str(inputs), str(out / "small"), "--resizer", "bilinear", "--scale", "0.5"],
        )
        assert_one_line_error(
            result, f"cannot write to the output folder {out / 'small'}", f"{out} cannot", cause
        )
        assert list(out.iterdir()) == []
