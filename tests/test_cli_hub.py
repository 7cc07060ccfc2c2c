"""``downsizenet hub``: thin commands over the library, one-line errors, no tracebacks."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from downsizenet_hub import DownsizeNet, paths
from downsizenet_hub.cli import app
from downsizenet_hub.hub import TrainingRecord, local, publish, save_pretrained


def tiny(channels: int = 4) -> DownsizeNet:
    return DownsizeNet(conv_layers=2, channels=channels, init="random")


RECORD = TrainingRecord(
    task="segmentation",
    pipeline="fcn-vgg16",
    dataset="scenes",
    generated_data=True,
    epochs=1,
    seed=0,
    metric="mIoU",
    score=0.5,
    baseline_score=0.375,
    command="downsizenet pretrain",
    scale_factor=0.5,
)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "200")  # a wide table, so cells are not wrapped
    # Whatever the package ships, these tests see only their own local hub.
    monkeypatch.setattr(local, "SHIPPED_DIR", tmp_path / "no-shipped-resizers")
    return CliRunner()


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def assert_one_line_error(result, pattern: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert pattern in lines[0]


def test_help_lists_the_commands(runner: CliRunner) -> None:
    result = runner.invoke(app, ["hub", "--help"])
    assert result.exit_code == 0
    for command in ("list", "show", "publish", "push", "remove"):
        assert command in result.output


def test_list_empty(runner: CliRunner) -> None:
    result = runner.invoke(app, ["hub", "list"])
    assert result.exit_code == 0
    assert f"No published resizers (local hub: {paths.hub_dir()})." in result.output


def test_list_shows_a_row_per_resizer(runner: CliRunner) -> None:
    publish(tiny(), "me/with-record", record=RECORD)
    publish(DownsizeNet(neighbourhood="bicubic", conv_layers=0), "me/bare")
    (paths.hub_dir() / "me" / "broken").mkdir()
    result = runner.invoke(app, ["hub", "list"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "me/with-record" in line)
    for cell in (
        "local",
        "bilinear 2x4",
        "segmentation on scenes (generated)",
        "x0.5",
        "mIoU 0.500",
        "bilinear 0.375",
        RECORD.date,
    ):
        assert cell in row
    bare = next(line for line in result.output.splitlines() if "me/bare" in line)
    assert "bicubic no convs" in bare
    assert "unreadable:" in next(line for line in result.output.splitlines() if "me/broken" in line)


def test_show_prints_the_card(runner: CliRunner) -> None:
    folder = publish(tiny(), "me/a", record=RECORD)
    result = runner.invoke(app, ["hub", "show", "me/a"])
    assert result.exit_code == 0
    assert result.output == (folder / "README.md").read_text()
    assert "Trained on the built-in generated data" in result.output


def test_show_missing_is_one_line(runner: CliRunner) -> None:
    result = runner.invoke(app, ["hub", "show", "me/missing"])
    assert_one_line_error(result, "no resizer found for 'me/missing'; tried:")


def test_publish_then_overwrite_only_with_force(runner: CliRunner, tmp_path: Path) -> None:
    save_pretrained(tiny(), tmp_path / "first", record=RECORD)
    save_pretrained(tiny(6), tmp_path / "second")
    result = runner.invoke(app, ["hub", "publish", str(tmp_path / "first"), "me/a"])
    assert result.exit_code == 0, result.output
    before = snapshot(paths.home())
    result = runner.invoke(app, ["hub", "publish", str(tmp_path / "second"), "me/a"])
    assert_one_line_error(result, "me/a is already in the local hub")
    assert snapshot(paths.home()) == before
    result = runner.invoke(app, ["hub", "publish", str(tmp_path / "second"), "me/a", "--force"])
    assert result.exit_code == 0, result.output
    assert DownsizeNet.from_pretrained("me/a").config.channels == 6


@pytest.mark.parametrize("name", ["../x", "me/../../x", "/etc/x"])
def test_traversal_names_are_refused(runner: CliRunner, tmp_path: Path, name: str) -> None:
    save_pretrained(tiny(), tmp_path / "src")
    before = snapshot(paths.home())
    for args in (["publish", str(tmp_path / "src"), name], ["remove", name, "--yes"]):
        result = runner.invoke(app, ["hub", *args])
        assert_one_line_error(result, "invalid resizer name")
    assert snapshot(paths.home()) == before


def test_remove_asks_first(runner: CliRunner) -> None:
    publish(tiny(), "me/a")
    result = runner.invoke(app, ["hub", "remove", "me/a"], input="n\n")
    assert result.exit_code != 0
    assert (paths.hub_dir() / "me" / "a").is_dir()
    result = runner.invoke(app, ["hub", "remove", "me/a"], input="y\n")
    assert result.exit_code == 0, result.output
    assert not (paths.hub_dir() / "me" / "a").exists()
    result = runner.invoke(app, ["hub", "remove", "me/a", "--yes"])
    assert_one_line_error(result, "no resizer named me/a in the local hub")


def test_push_offline_is_one_line_and_fast(runner: CliRunner) -> None:
    publish(tiny(), "me/a")
    before = snapshot(paths.home())
    start = time.monotonic()
    result = runner.invoke(app, ["hub", "push", "me/a", "someone/a"])
    assert time.monotonic() - start < 3
    assert_one_line_error(result, "cannot push to someone/a: offline mode is on")
    assert snapshot(paths.home()) == before


def test_push_without_network_is_one_line(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_fake")
    publish(tiny(), "me/a")
    result = runner.invoke(
        app, ["hub", "push", "me/a", "someone/a", "--endpoint", "http://127.0.0.1:1"]
    )
    assert_one_line_error(result, "cannot reach http://127.0.0.1:1 to push someone/a")
