"""Hostile inputs end in one clear line (exit 2), a documented skip (exit 1), or the documented
behaviour; never a traceback, a hang, or a replaced file that was not a regular file.

Grouped by kind: writing outputs, user errors that were reported as bugs, files that would
block, things that went wrong silently, and unclear messages.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from downsizenet_hub import DownsizeNet, paths
from downsizenet_hub.atomic import WriteError, write_atomic
from downsizenet_hub.cli import app
from downsizenet_hub.hub import TrainingRecord, publish, save_pretrained
from downsizenet_hub.jsonfile import loads_json, read_json

from helpers import RECORD, assert_one_line_error


def tiny() -> DownsizeNet:
    return DownsizeNet(conv_layers=1, channels=4, init="random")


def png(path: Path, height: int = 40, width: int = 40) -> Path:
    Image.fromarray(np.full((height, width, 3), 120, np.uint8)).save(path)
    return path


def bomb_png(path: Path, side: int = 60000) -> Path:
    """A PNG declaring side x side pixels (Pillow's decompression-bomb guard refuses it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def edit_config(folder: Path, edit) -> None:
    path = folder / "config.json"
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))


# ------------------------------------------------------------------------------ writing outputs
def special_files(tmp_path: Path) -> dict[str, Path]:
    """A FIFO, a socket, a folder, and a device node (the system's /dev/null)."""
    fifo = tmp_path / "fifo.out"
    os.mkfifo(fifo)
    sock = tmp_path / "socket.out"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    server.close()
    folder = tmp_path / "folder.out"
    folder.mkdir()
    return {"FIFO": fifo, "socket": sock, "folder": folder, "device": Path(os.devnull)}


def kinds(tmp_path: Path) -> dict[str, int]:
    return {name: os.stat(path).st_mode for name, path in special_files(tmp_path).items()}


@pytest.mark.parametrize("kind", ["FIFO", "socket", "folder", "device"])
def test_the_atomic_writer_never_replaces_a_file_that_is_not_regular(
    tmp_path: Path, kind: str
) -> None:
    target = special_files(tmp_path)[kind]
    before = os.stat(target)
    with pytest.raises(WriteError, match="cannot write") as refused:
        write_atomic(target, lambda handle: handle.write(b"data"))
    assert "\n" not in str(refused.value)
    after = os.stat(target)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("kind", ["FIFO", "socket", "folder", "device"])
def test_export_and_compare_refuse_a_target_that_is_not_a_regular_file(
    runner: CliRunner, tmp_path: Path, kind: str
) -> None:
    target = special_files(tmp_path)[kind]
    before = os.stat(target)
    publish(tiny(), "me/r", record=RECORD)
    for argv in (
        ["export", "me/r", "--onnx", str(target), "--scale", "0.5", "--input-size", "16x16"],
        ["export", "me/r", "--torchscript", str(target), "--scale", "0.5", "--input-size", "16"],
        ["compare", str(png(tmp_path / "in.png")), "--resizers", "bilinear", "--scale", "0.5",
         "--out", str(target)],
    ):  # fmt: skip
        result = runner.invoke(app, argv)
        assert_one_line_error(result, f"cannot write {target}")
        after = os.stat(target)
        assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)


def test_resize_skips_an_output_path_that_is_a_fifo(runner: CliRunner, tmp_path: Path) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    png(inputs / "a.png")
    png(inputs / "b.png")
    out.mkdir()
    os.mkfifo(out / "a.png")
    result = runner.invoke(
        app, ["resize", str(inputs), str(out), "--resizer", "bilinear", "--scale", "0.5",
              "--overwrite", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert f"skipped: {out / 'a.png'}: cannot write the image (it is a FIFO" in result.output
    assert (out / "b.png").is_file() and not (out / "a.png").is_file()


# ------------------------------------------------------------- user errors, not bugs (exit 2)
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["downsizenet"].update(channels="3"), "channels must be an int"),
        (lambda d: d["downsizenet"].update(channels=True), "channels must be an int"),
        (lambda d: d["downsizenet"].update(channels=16.0), "channels must be an int"),
        (lambda d: d.update(downsizenet="bilinear"), "must be a JSON object"),
        (lambda d: d["training"].update(date=20260101), "TrainingRecord.date must be str"),
        (lambda d: d["training"].update(n_seeds=0), "n_seeds >= 1"),
        (lambda d: d["training"].pop("metric"), "metric"),
        (lambda d: d["training"].update(differences=[{"task": 1}]), "missing 6 required"),
        (lambda d: d["training"].update(score=10**400), "TrainingRecord.score is too large"),
        (lambda d: d["training"].update(scale_factor=10**400), "scale_factor is too large"),
        (
            lambda d: d["training"].update(
                differences=[
                    {
                        "task": "segmentation",
                        "metric": "mIoU",
                        "baseline": "bilinear",
                        "difference": 1.0,
                        "ci_low": 10**500,
                        "ci_high": 2.0,
                        "n_seeds": 3,
                    }
                ]
            ),
            "MeasuredDifference.ci_low is too large",
        ),
    ],
)
def test_a_config_json_edited_by_hand_is_a_user_error_everywhere(
    runner: CliRunner, tmp_path: Path, edit, message: str
) -> None:
    folder = tmp_path / "saved"
    save_pretrained(tiny(), folder, record=RECORD)
    edit_config(folder, edit)
    assert_one_line_error(runner.invoke(app, ["hub", "publish", str(folder), "me/copy"]), message)
    # The same file in the local hub: listed as unreadable; resize and export refuse it.
    entry = publish(tiny(), "me/edited", record=RECORD)
    edit_config(entry, edit)
    publish(tiny(), "me/fine", record=RECORD)
    listed = runner.invoke(app, ["hub", "list"])
    assert listed.exit_code == 0, listed.output
    rows = {line.split("\t")[0]: line.split("\t") for line in listed.output.splitlines()}
    assert (
        rows["me/edited"][2].startswith("unreadable: config.json")
        and message.split()[0] in (rows["me/edited"][2])
    )
    assert rows["me/fine"][2].startswith("DownsizeNet")
    image = png(tmp_path / "in.png")
    resized = runner.invoke(
        app, ["resize", str(image), str(tmp_path / "out"), "--resizer", "me/edited",
              "--scale", "0.5", "--no-progress"],
    )  # fmt: skip
    assert_one_line_error(resized, message)
    exported = runner.invoke(
        app, ["export", "me/edited", "--onnx", str(tmp_path / "m.onnx"), "--scale", "0.5",
              "--input-size", "16x16"],
    )  # fmt: skip
    assert_one_line_error(exported, message)


def test_a_huge_memory_limit_is_no_limit(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOWNSIZENET_MAX_MEMORY_GB", "1e308")
    image = png(tmp_path / "in.png")
    result = runner.invoke(
        app, ["resize", str(image), str(tmp_path / "out"), "--resizer", "bilinear", "--scale",
              "0.5", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2, torch.int8])
def test_weights_of_an_unusable_dtype_are_refused(
    runner: CliRunner, tmp_path: Path, dtype: torch.dtype
) -> None:
    folder = tmp_path / "saved"
    save_pretrained(tiny(), folder)
    weights = folder / "model.safetensors"
    state = load_file(str(weights))
    key = next(name for name, tensor in state.items() if tensor.is_floating_point())
    state[key] = state[key].to(dtype)
    save_file(state, str(weights))
    result = runner.invoke(app, ["hub", "publish", str(folder), "me/copy"])
    assert_one_line_error(
        result, f"has dtype {str(dtype).removeprefix('torch.')}; expected floating"
    )


def test_resize_skips_and_names_decompression_bombs_and_images_too_small(
    runner: CliRunner, tmp_path: Path
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    png(inputs / "fine.png")
    bomb_png(inputs / "bomb.png")
    png(inputs / "dot.png", 1, 1)
    for source in (str(inputs), str(inputs / "*.png")):  # a folder and a glob
        out = tmp_path / f"out{len(source)}"
        result = runner.invoke(
            app, ["resize", source, str(out), "--resizer", "bilinear", "--scale", "0.5",
                  "--no-progress"],
        )  # fmt: skip
        assert result.exit_code == 1, result.output
        assert "resized 1 of 3 images" in result.output
        assert f"skipped: {inputs / 'bomb.png'}: cannot read as an image" in result.output
        assert f"skipped: {inputs / 'dot.png'}: " in result.output
        assert "Traceback" not in result.output and "internal error" not in result.output
        assert sorted(p.name for p in out.iterdir()) == ["fine.png"]


@pytest.mark.parametrize(("name", "maker"), [("bomb.png", bomb_png), ("dot.png", None)])
def test_compare_names_an_image_it_cannot_use(
    runner: CliRunner, tmp_path: Path, name: str, maker
) -> None:
    image = maker(tmp_path / name) if maker else png(tmp_path / name, 1, 1)
    result = runner.invoke(
        app, ["compare", str(image), "--resizers", "bilinear", "--scale", "0.5", "--out",
              str(tmp_path / "c.png")],
    )  # fmt: skip
    assert_one_line_error(result, str(image))
    assert not (tmp_path / "c.png").exists()


def test_a_scenes_manifest_without_class_names_is_a_clear_error(
    runner: CliRunner, tmp_path: Path
) -> None:
    from downsizenet_hub.data import scenes

    root = tmp_path / "scenes"
    root.mkdir()
    manifest = {"format": scenes.FORMAT, "format_version": scenes.FORMAT_VERSION, "seed": 0,
                "size": 100, "images": {"train": 1, "val": 1}}  # fmt: skip
    (root / scenes.MANIFEST).write_text(json.dumps(manifest))
    result = runner.invoke(app, ["data", "show", str(root), "--out", str(tmp_path / "g.png")])
    assert_one_line_error(result, "class_names must be a non-empty list")
    manifest["class_names"] = ["background", "x"]
    manifest["images"] = {"train": "1"}
    (root / scenes.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="images must hold the train and val counts"):
        scenes.read_manifest(root)


def test_hub_list_into_a_reader_that_left_ends_quietly(tmp_path: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # `| head -1` after head has exited: every write meets a broken pipe
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.run(
        [sys.executable, "-m", "downsizenet_hub", "hub", "list"],
        stdout=write, stderr=subprocess.PIPE, env=env, timeout=300, check=False,
    )  # fmt: skip
    os.close(write)
    assert child.stderr == b""
    assert child.returncode == 141


# ------------------------------------------------------------------ files that would block
def test_a_config_json_that_is_a_fifo_never_blocks(
    runner: CliRunner, tmp_path: Path, deadline: None
) -> None:
    folder = tmp_path / "saved"
    save_pretrained(tiny(), folder)
    (folder / "config.json").unlink()
    os.mkfifo(folder / "config.json")
    assert_one_line_error(runner.invoke(app, ["hub", "publish", str(folder), "me/copy"]), "a FIFO")
    entry = publish(tiny(), "me/fifo")
    (entry / "config.json").unlink()
    os.mkfifo(entry / "config.json")
    listed = runner.invoke(app, ["hub", "list"])
    assert listed.exit_code == 0 and "unreadable: " in listed.output and "a FIFO" in listed.output
    resized = runner.invoke(
        app, ["resize", str(png(tmp_path / "in.png")), str(tmp_path / "out"), "--resizer",
              "me/fifo", "--scale", "0.5", "--no-progress"],
    )  # fmt: skip
    assert_one_line_error(resized, "is not a regular file (a FIFO)")


def test_json_is_read_only_from_regular_files(tmp_path: Path, deadline: None) -> None:
    os.mkfifo(tmp_path / "f.json")
    with pytest.raises(ValueError, match=r"is not a regular file \(a FIFO\)"):
        read_json(tmp_path / "f.json")
    with pytest.raises(ValueError, match=r"is not a regular file \(a device\)"):
        read_json(os.devnull)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        read_json(tmp_path)


# ---------------------------------------------------------------------- silently wrong before
@pytest.mark.parametrize(
    "text",
    ['{"a": 1, "a": 2}', '{"x": {"k": 1, "k": 1}}', '[{"b": 0}, {"c": 1, "c": 1}]'],
)
def test_duplicate_keys_in_json_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"gives the key '.' twice in one object"):
        loads_json(text, source="config.json")


def test_a_config_json_with_a_key_twice_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    save_pretrained(tiny(), folder)
    text = (folder / "config.json").read_text()
    (folder / "config.json").write_text(
        text.replace('"format_version": 1', '"format_version": 1, "format_version": 2')
    )
    assert_one_line_error(
        runner.invoke(app, ["hub", "publish", str(folder), "me/copy"]),
        "gives the key 'format_version' twice",
    )


def test_newlines_and_tabs_in_a_record_keep_hub_list_one_line_per_resizer(
    runner: CliRunner,
) -> None:
    record = TrainingRecord(
        **{**RECORD.to_dict(), "task": "seg\nmentation\tx", "metric": "m\r\x1b[31mIoU"}
    )
    publish(tiny(), "me/odd", record=record)
    result = runner.invoke(app, ["hub", "list"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert len(lines) == 2 and all(len(line.split("\t")) == 5 for line in lines)
    assert "\x1b" not in result.output and "\r" not in result.output


def test_pretrain_refuses_push_to_hub_without_publish_and_bad_names(
    runner: CliRunner, tmp_path: Path
) -> None:
    base = ["pretrain", "--run-dir", str(tmp_path / "runs"), "--no-progress"]
    assert_one_line_error(
        runner.invoke(app, [*base, "--push-to-hub", "me/x"]), "--push-to-hub needs --publish"
    )
    assert_one_line_error(
        runner.invoke(app, [*base, "--publish", "me/x", "--push-to-hub", "not a repo"]),
        "invalid resizer name",
    )
    publish(tiny(), "me/taken")
    assert_one_line_error(
        runner.invoke(app, [*base, "--publish", "me/taken"]), "me/taken is already in the local hub"
    )
    assert not (tmp_path / "runs").exists()  # refused before any training


def test_voc_boxes_changed_to_fit_are_said_once_per_file(tmp_path: Path) -> None:
    from downsizenet_hub.data.voc import AnnotationWarning, fit_boxes

    boxes = torch.tensor(
        [[0.0, 0.0, 5.0, 5.0], [-3.0, 2.0, 12.0, 4.0], [float("-inf"), 0, 3, float("inf")],
         [20.0, 20.0, 30.0, 30.0]]
    )  # fmt: skip
    with pytest.warns(AnnotationWarning) as caught:
        kept, fitted = fit_boxes(tmp_path / "a.xml", boxes, height=10, width=10)
    assert len(caught) == 1
    assert str(caught[0].message) == (
        f"Annotation file {tmp_path / 'a.xml'}: clipped 2 box(es) reaching outside it and dropped "
        "1 box(es) lying wholly outside it (image 10x10 px)."
    )
    assert kept.tolist() == [True, True, True, False]
    assert fitted.tolist() == [[0, 0, 5, 5], [0, 2, 10, 4], [0, 0, 3, 10]]


def test_a_voc_box_that_is_not_a_number_is_refused(tmp_path: Path) -> None:
    from downsizenet_hub.data.voc import read_annotation

    path = tmp_path / "a.xml"
    path.write_text(
        "<annotation><object><name>cat</name><bndbox><xmin>nan</xmin><ymin>1</ymin>"
        "<xmax>4</xmax><ymax>4</ymax></bndbox></object></annotation>"
    )
    with pytest.raises(ValueError, match=r"object 0: box .* not a number"):
        read_annotation(path, {"background": 0, "cat": 1})


# ------------------------------------------------------------------------------ unclear before
@pytest.mark.parametrize("command", ["pretrain", "transfer"])
@pytest.mark.parametrize("seed", ["18446744073709551616", "-1", "4294967296"])
def test_a_seed_out_of_range_is_refused_by_the_option(
    runner: CliRunner, tmp_path: Path, command: str, seed: str
) -> None:
    result = runner.invoke(app, [command, "--seed", seed, "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "Invalid value for '--seed'" in result.output
    assert "4294967295" in result.output or "greater than or equal to 0" in result.output
    assert not (tmp_path / "r").exists()


def test_a_corrupt_final_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    from downsizenet_hub.engine.checkpoint import load_checkpoint, save_checkpoint
    from downsizenet_hub.experiments.pretrain import _load_final_weights

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_engine import config, make_pipeline, train_set, val_set

    from downsizenet_hub.engine import fit

    run_dir = tmp_path / "run"
    fit(make_pipeline(), train_set(), val_set(), config(epochs=1), run_dir, progress=False)
    good = (run_dir / "checkpoint.pt").read_bytes()
    pipeline = make_pipeline()
    _load_final_weights(pipeline, run_dir)  # the good one loads
    state = load_checkpoint(run_dir / "checkpoint.pt")
    for corrupt, message in (
        (good[: len(good) // 2], "is not a readable checkpoint"),
        (os.urandom(4096), "is not a readable checkpoint"),
        (b"", "is not a readable checkpoint"),
    ):
        (run_dir / "checkpoint.pt").write_bytes(corrupt)
        with pytest.raises(ValueError, match=message):
            _load_final_weights(make_pipeline(), run_dir)
    torch.save([1, 2, 3], run_dir / "checkpoint.pt")
    with pytest.raises(ValueError, match="is not a downsizenet-engine/1 checkpoint"):
        _load_final_weights(make_pipeline(), run_dir)
    state.model = {key: torch.zeros(7) for key in state.model}
    save_checkpoint(run_dir / "checkpoint.pt", state)
    with pytest.raises(ValueError, match="does not fit this pipeline"):
        _load_final_weights(make_pipeline(), run_dir)
    state.model = {"nothing.here": torch.zeros(1)}
    save_checkpoint(run_dir / "checkpoint.pt", state)
    with pytest.raises(ValueError, match="does not fit this pipeline"):
        _load_final_weights(make_pipeline(), run_dir)
    assert paths.home().is_dir()
