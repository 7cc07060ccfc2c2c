"""The command line as a whole: cheap start-up, help screens that read at 80 columns, and bugs
that are reported as bugs (one line and a traceback file), never as user errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from downsizenet_hub.cli import app
from downsizenet_hub.cli.common import BUG_EXIT, USER_ERROR_EXIT

#: Packages that --help must not import (each takes seconds and hundreds of MB to load).
HEAVY = ("torch", "torchvision", "matplotlib", "huggingface_hub")


def imported_by(code: str) -> list[str]:
    """The heavy packages in sys.modules after running ``code`` in a fresh interpreter."""
    probe = f"""
import json, sys
try:
{chr(10).join("    " + line for line in code.strip().splitlines())}
except SystemExit:
    pass
sys.stdout.flush()
print("\\n" + json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    return [name for name in HEAVY if name in modules]


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["pretrain", "--help"], ["hub", "list", "--help"]],
    ids=" ".join,
)
def test_help_imports_neither_torch_nor_torchvision(argv: list[str]) -> None:
    code = f"sys.argv = {['downsizenet', *argv]!r}\nfrom downsizenet_hub.cli import main\nmain()"
    assert imported_by(code) == []


@pytest.mark.parametrize(
    "argv",
    [["hub", "list"], ["hub", "show", "downsizenet/scenes-a-noisy-x0.3"]],
    ids=" ".join,
)
def test_listing_and_showing_the_hub_read_json_and_cards_without_torch(
    argv: list[str], tmp_path: Path
) -> None:
    code = (
        f"import os\nos.environ['DOWNSIZENET_HOME'] = {str(tmp_path)!r}\n"
        f"sys.argv = {['downsizenet', *argv]!r}\nfrom downsizenet_hub.cli import main\nmain()"
    )
    assert imported_by(code) == []


def test_the_package_imports_its_public_names_lazily() -> None:
    assert imported_by("import downsizenet_hub\nprint(downsizenet_hub.__version__)") == []
    code = "from downsizenet_hub import DownsizeNet, DownsizeNetConfig, with_resizer, __version__"
    assert imported_by(code) == ["torch", "torchvision"]  # neither matplotlib nor huggingface_hub
    import downsizenet_hub
    from downsizenet_hub import DownsizeNet, DownsizeNetConfig, with_resizer
    from downsizenet_hub.hub.model import DownsizeNet as Direct
    from downsizenet_hub.resizing import DownsizeNet as Core

    assert DownsizeNet is Direct and callable(with_resizer) and DownsizeNetConfig().channels > 0
    assert issubclass(DownsizeNet, Core) and not hasattr(Core, "from_pretrained")
    assert {"DownsizeNet", "with_resizer", "__version__"} <= set(dir(downsizenet_hub))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        downsizenet_hub.Nope  # noqa: B018


# ---------------------------------------------------------------------------- help at 80 columns
def command_paths(group: typer.Typer) -> list[list[str]]:
    """Every command and group of the app as argv prefixes, the root included."""
    from typer.main import get_command

    paths: list[list[str]] = []

    def walk(command: object, prefix: list[str]) -> None:
        paths.append(prefix)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*prefix, name])

    walk(get_command(group), [])
    return paths


COMMANDS = command_paths(app)


def help_text(argv: list[str], columns: int) -> str:
    """Help as a terminal of ``columns`` shows it (click caps its width at 80 unless told)."""
    result = CliRunner().invoke(
        app,
        [*argv, "--help"],
        env={"COLUMNS": str(columns)},
        terminal_width=columns,
        max_content_width=max(columns, 80) if columns > 80 else None,
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_checked() -> None:
    names = {" ".join(argv) for argv in COMMANDS}
    assert {"", "pretrain", "transfer", "quickstart", "study", "hub", "hub list", "data"} <= names
    assert len(names) >= 16
    assert max(len(line) for line in help_text(["pretrain"], 1000).splitlines()) > 80


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv) or "downsizenet")
def test_help_reads_well_at_80_columns(argv: list[str]) -> None:
    narrow = help_text(argv, 80)
    wide = help_text(argv, 1000)  # wide enough that nothing wraps: its words are the real ones
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "…" not in narrow
    assert "..." not in narrow.replace("[ARGS]...", ""), "a cut short help or option"
    assert "<bool>" not in narrow
    token = r"[^\s\[\](),;]+"
    split = set(re.findall(token, narrow)) - set(re.findall(token, wide))
    assert not split, f"words split across lines at 80 columns: {sorted(split)}"


def test_help_defaults_match_the_library() -> None:
    """Constants the help shows without importing the library (that would cost seconds)."""
    from downsizenet_hub.cli.data import DEFAULT_IMAGES
    from downsizenet_hub.cli.resize import FIXED_RESIZER_NAMES
    from downsizenet_hub.data.scenes import PRESETS
    from downsizenet_hub.resizing.fixed import FIXED_RESIZERS

    assert PRESETS["default"][0] == DEFAULT_IMAGES
    assert FIXED_RESIZER_NAMES == FIXED_RESIZERS


# ---------------------------------------------------------------------------- bugs vs user errors
@pytest.fixture
def broken_show(monkeypatch: pytest.MonkeyPatch) -> None:
    """`hub show` hits a bug in the library: a TypeError from our own code."""
    from downsizenet_hub import hub

    def show(ref: str) -> str:
        return "card of " + len(ref)  # type: ignore[operator]

    monkeypatch.setattr(hub, "show", show)


def test_a_bug_is_reported_as_a_bug_with_its_traceback_in_a_file(
    broken_show: None, isolated_home: Path
) -> None:
    result = CliRunner().invoke(app, ["hub", "show", "me/a"])
    assert result.exit_code == BUG_EXIT, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("internal error (a bug in downsizenet-hub")
    assert "TypeError: can only concatenate str" in lines[0]
    assert "rerun with --debug or DOWNSIZENET_DEBUG=1" in lines[1]
    logs = list((isolated_home / "logs").glob("crash-*.txt"))
    assert len(logs) == 1 and str(logs[0]) in lines[1]
    text = logs[0].read_text()
    assert text.startswith("Traceback") and "in show" in text and "TypeError" in text


@pytest.mark.parametrize("how", ["--debug", "DOWNSIZENET_DEBUG=1"])
def test_debug_shows_the_traceback(broken_show: None, how: str, isolated_home: Path) -> None:
    argv, env = (["--debug"], {}) if how == "--debug" else ([], {"DOWNSIZENET_DEBUG": "1"})
    result = CliRunner().invoke(app, [*argv, "hub", "show", "me/a"], env=env)
    assert isinstance(result.exception, TypeError)  # raised through, so Python prints it
    assert not (isolated_home / "logs").exists()


def test_the_traceback_goes_to_a_temp_file_when_the_home_is_unwritable(
    broken_show: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("DOWNSIZENET_HOME", str(blocker))
    result = CliRunner().invoke(app, ["hub", "show", "me/a"])
    assert result.exit_code == BUG_EXIT
    log = Path(result.stderr.split("full traceback: ")[1].split(" (rerun")[0])
    assert log.parent == Path(os.environ.get("TMPDIR", "/tmp")) and log.is_file()
    log.unlink()


def test_a_user_error_stays_one_line_with_exit_2() -> None:
    result = CliRunner().invoke(app, ["hub", "show", "me/missing"])
    assert result.exit_code == USER_ERROR_EXIT
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


def test_a_bug_in_a_subprocess_prints_no_traceback(tmp_path: Path) -> None:
    """The console script end to end: one line and the file, exit 70."""
    code = (
        "import sys\n"
        "from downsizenet_hub import hub\n"
        "hub.show = lambda ref: None + 1\n"
        "sys.argv = ['downsizenet', 'hub', 'show', 'me/a']\n"
        "from downsizenet_hub.cli import main\n"
        "main()"
    )
    env = {**os.environ, "DOWNSIZENET_HOME": str(tmp_path)}
    env.pop("DOWNSIZENET_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == BUG_EXIT
    assert "Traceback" not in result.stderr
    assert "internal error" in result.stderr and "TypeError" in result.stderr


@pytest.mark.parametrize(
    ("error", "user"),
    [
        (ValueError("bad size"), True),
        (FileNotFoundError(2, "missing"), True),
        (ConnectionError("offline"), True),
        (OSError(28, "No space left on device"), True),  # the user's disk, not our code
        (TypeError("unsupported operand"), False),
        (KeyError("miou"), False),
        (OSError(22, "Invalid argument"), False),  # EINVAL: our code passed something wrong
    ],
)
def test_which_errors_are_the_users(error: BaseException, user: bool) -> None:
    from downsizenet_hub.atomic import WriteError
    from downsizenet_hub.cli.common import is_user_error

    assert is_user_error(error) is user
    assert is_user_error(WriteError("/x/y", 5, "input/output error"))
