"""``downsizenet hub``: thin commands over the library, one-line errors, no tracebacks."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from downsizenet_hub import DownsizeNet, paths
from downsizenet_hub.cli import app
from downsizenet_hub.hub import local, publish, save_pretrained

from helpers import RECORD, assert_one_line_error, snapshot


def tiny(channels: int = 4) -> DownsizeNet:
    return DownsizeNet(conv_layers=2, channels=channels, init="random")


@pytest.fixture
def runner(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "200")  # a wide table, so cells are not wrapped
    return runner


def test_help_lists_the_commands(runner: CliRunner) -> None:
    result = runner.invoke(app, ["hub", "--help"])
    assert result.exit_code == 0
    for command in ("list", "show", "publish", "push", "remove"):
        assert command in result.output


def test_list_empty(runner: CliRunner) -> None:
    result = runner.invoke(app, ["hub", "list"])
    assert result.exit_code == 0
    assert f"No published resizers (local hub: {paths.hub_dir()})." in result.output


def test_list_piped_is_tab_separated(runner: CliRunner) -> None:
    publish(tiny(), "me/with-record", record=RECORD)
    publish(DownsizeNet(neighbourhood="bicubic", conv_layers=0), "me/bare")
    (paths.hub_dir() / "me" / "broken").mkdir()
    result = runner.invoke(app, ["hub", "list"])  # CliRunner's stdout is not a terminal
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.output.splitlines()]
    assert rows[0] == ["NAME", "FROM", "RESIZER", "TRAINED FOR", "SCORE"]
    assert all(len(row) == 5 for row in rows), rows
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["me/with-record"] == [
        "me/with-record",
        "local",
        "DownsizeNet, 2x2 taps, 2x4 convs",
        "segmentation x0.5",
        "segmentation mIoU +0.125 vs bilinear (n=1)",
    ]
    assert by_name["me/bare"][2:] == ["DownsizeNet, 4x4 taps, no convs", "-", "-"]
    assert by_name["me/broken"][2].startswith("unreadable:")
    assert "┃" not in result.output and "│" not in result.output  # no box drawing when piped


def test_list_table_fits_80_columns_without_splitting_words(runner: CliRunner) -> None:
    """On a terminal: every line within 80 columns, every word of every cell whole."""
    from rich.console import Console

    from downsizenet_hub.cli.hub import LIST_COLUMNS, list_row, print_table

    publish(tiny(), "me/with-record", record=RECORD)
    # As long as the shipped resizer's name (29 characters); a longer name folds.
    publish(DownsizeNet(use_distance=False), "downsizenet/texture-only-x0.35")
    (paths.hub_dir() / "me" / "broken").mkdir()
    rows = [list_row(entry) for entry in local.list_published()]
    console = Console(width=80, record=True, force_terminal=True, file=io.StringIO())
    hub_dir = "/home/someone/.cache/downsizenet/hub"
    print_table(rows, console, local_hub=hub_dir)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    words = set(re.findall(r"[^\s─]+", text))
    titles = f"Local hub ({hub_dir}) Shipped with downsizenet-hub"
    whole = set(
        re.findall(r"\S+", " ".join([titles, *LIST_COLUMNS, *(c for r in rows for c in r)]))
    )
    assert words <= whole, sorted(words - whole)
    assert "…" not in text


def test_show_prints_the_card(runner: CliRunner) -> None:
    folder = publish(tiny(), "me/a", record=RECORD)
    result = runner.invoke(app, ["hub", "show", "me/a"])
    assert result.exit_code == 0
    assert result.output == (folder / "README.md").read_text()
    assert "Trained on the built-in generated data" in result.output


def test_show_missing_is_one_line_and_never_online(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, connections: list[object]
) -> None:
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # online allowed, and still not contacted:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1")  # would fail, slowly, if contacted
    result = runner.invoke(app, ["hub", "show", "nope/missing"])
    assert connections == []
    assert_one_line_error(result, "no resizer found for 'nope/missing'; tried:")
    assert "Hugging Face Hub" not in result.stderr.split("; for the")[0]
    assert result.stderr.rstrip().endswith("write hf-hub:nope/missing.")


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


def test_push_offline_is_one_line_and_never_tries_the_network(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("an offline push must not reach for the Hub")

    for method in ("create_repo", "upload_folder", "repo_info", "file_exists"):
        monkeypatch.setattr(huggingface_hub.HfApi, method, no_network)
    publish(tiny(), "me/a")
    before = snapshot(paths.home())
    result = runner.invoke(app, ["hub", "push", "me/a", "someone/a"])
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
