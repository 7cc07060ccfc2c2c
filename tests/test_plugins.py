"""Resizers from other packages: entry points, --plugin, broken plugins, study keys, and the
worked example (examples/tiny-resizer) installed, trained, published, transferred and studied."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from downsizenet_hub import hub, plugins
from downsizenet_hub.cli import app
from downsizenet_hub.hub.architectures import ARCHITECTURES
from downsizenet_hub.registry import create_resizer, list_resizers
from downsizenet_hub.study import study_config
from downsizenet_hub.study.config import resizer_spec
from downsizenet_hub.study.runner import plan_study

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tiny-resizer"
#: The example's entry point, as its pyproject.toml declares it.
TINY = ("tiny_learned", "tiny_resizer:plugin")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def no_plugins(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Each test starts with no plugin found and no entry point installed, and leaves none."""
    plugins._clear()
    monkeypatch.setattr(plugins, "_installed", list)
    yield
    plugins._clear()


def install(monkeypatch: pytest.MonkeyPatch, *entries: tuple[str, str]) -> None:
    """Pretend that packages declaring ``entries`` ((name, "module:object")) are installed."""
    points = [metadata.EntryPoint(name, value, plugins.GROUP) for name, value in entries]
    monkeypatch.setattr(plugins, "_installed", lambda: points)
    plugins._clear()


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> None:
    """A module ``name`` with ``source``, importable for this test only."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worked example importable as ``tiny_resizer`` (not installed)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.delitem(sys.modules, "tiny_resizer", raising=False)


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _pretrain(tmp_path: Path, *args: str) -> Any:
    """``pretrain`` on tiny settings; a resizer that cannot be built stops it before any data."""
    run_dir = str(tmp_path / "run")
    return _invoke("pretrain", "--compare", "none", "--run-dir", run_dir, "--no-progress", *args)


def _one_line_error(result: Any) -> str:
    """The user-error line of a command (exit 2, one line, no traceback)."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_built_in_names_are_exactly_the_registry_and_hub_ones() -> None:
    assert set(list_resizers()) | set(ARCHITECTURES) == plugins.BUILT_IN_NAMES


def test_an_installed_plugin_is_created_listed_published_and_loaded_strictly(
    monkeypatch: pytest.MonkeyPatch, example: None, tmp_path: Path
) -> None:
    install(monkeypatch, TINY)
    assert list_resizers(fixed=False)[-1] == "tiny_learned"
    assert "tiny_learned" not in list_resizers(fixed=True)
    resizer = create_resizer("tiny_learned", hidden=4)
    assert resizer(torch.rand(2, 3, 20, 20), scale_factor=0.5).shape == (2, 3, 10, 10)
    with torch.no_grad():
        for parameter in resizer.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    hub.save_pretrained(resizer, tmp_path / "saved")
    document = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert document["architecture"] == "tiny_learned"
    assert document["tiny_learned"] == {"channels": 3, "hidden": 4}
    assert document["plugin"] == {"name": "tiny_resizer", "version": "unknown"}
    loaded = create_resizer(str(tmp_path / "saved"))  # the architecture comes from config.json
    assert type(loaded) is type(resizer) and not loaded.training
    torch.testing.assert_close(loaded.state_dict(), resizer.state_dict())
    # Strict: an extra tensor is refused, as for a built-in architecture.
    weights = tmp_path / "saved" / "model.safetensors"
    save_file({**load_file(str(weights)), "extra": torch.zeros(1)}, str(weights))
    with pytest.raises(ValueError, match=r"unexpected tensor\(s\) \['extra'\]"):
        create_resizer(str(tmp_path / "saved"))
    # The local hub: publish, list (the plugin named), show (the card).
    hub.publish(resizer, "tests/tiny")
    listed = _invoke("hub", "list")
    assert "tiny residual resizer (plugin tiny_resizer unknown)" in listed.output
    card = _invoke("hub", "show", "tests/tiny").output
    assert "architecture `tiny_learned`" in card and "downsizenet-hub-plugin" in card


def test_a_published_plugin_resizer_without_its_plugin_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, example: None, tmp_path: Path
) -> None:
    install(monkeypatch, TINY)
    hub.save_pretrained(create_resizer("tiny_learned"), tmp_path / "saved")
    install(monkeypatch)
    with pytest.raises(ValueError, match=r"unknown architecture 'tiny_learned'.*--plugin"):
        create_resizer(str(tmp_path / "saved"))


def test_plugin_option_registers_a_module_for_one_command(example: None, tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.new("RGB", (16, 12), (200, 40, 10)).save(tmp_path / "in" / "a.png")
    args = ["resize", str(tmp_path / "in"), str(tmp_path / "out"), "--resizer", "tiny_learned",
            "--scale", "0.5", "--no-progress"]  # fmt: skip
    unknown = _invoke(*args)
    assert unknown.exit_code == 2 and "tiny_learned" in unknown.output
    result = _invoke(*args, "--plugin", "tiny_resizer")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "a.png").size == (8, 6)
    # The module's resizer is registered once, however often the module is named.
    assert _invoke(*args, "--plugin", "tiny_resizer", "--overwrite").exit_code == 0
    assert [p.name for p in plugins.load_module("tiny_resizer:plugin")] == ["tiny_learned"]


def test_plugin_option_takes_a_file_and_an_installed_plugin_named_again(
    monkeypatch: pytest.MonkeyPatch, example: None
) -> None:
    [found] = plugins.load_module(str(EXAMPLE / "tiny_resizer.py"))
    assert found.name == "tiny_learned" and found.version.startswith("sha256:")
    install(monkeypatch, TINY)  # installed too: the same object, named twice, is one plugin
    installed = plugins.get("tiny_learned")
    assert (
        installed is not None and plugins.load_module("tiny_resizer")[0].plugin is installed.plugin
    )
    line = _one_line_error(_invoke("hub", "list", "--plugin", "no/such/file.py"))
    assert line == "error: --plugin no/such/file.py: no/such/file.py is not a file."


def test_publishing_needs_a_config_class_and_is_refused_before_training(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = """
        from torch import nn
        from downsizenet_hub.plugins import ResizerPlugin
        from downsizenet_hub.resizing.functional import interpolate
        class Plain(nn.Module):
            def __init__(self):
                super().__init__()
                self.gain = nn.Parameter(nn.init.ones_(nn.Parameter(__import__("torch").empty(1))))
            def forward(self, images, size=None, scale_factor=None):
                return self.gain * interpolate(images, "bilinear", size, scale_factor)
        plain = ResizerPlugin("plain", Plain)
        """
    write_module(tmp_path, monkeypatch, "plain_mod", source)
    line = _one_line_error(
        _pretrain(tmp_path, "--resizer", "plain", "--publish", "me/plain", "--plugin", "plain_mod")
    )
    assert "'plain' has no config_class, so it cannot be published" in line
    assert not (tmp_path / "run").exists()
    with pytest.raises(TypeError, match="or a plugin's with a config_class"):
        hub.save_pretrained(create_resizer("plain"), tmp_path / "saved")
    with pytest.raises(ValueError, match=r"resizers\[0\] \(plain\): .* cannot be published"):
        resizer_spec("plain", "resizers[0]")  # a study stores every resizer it trains


def test_the_docs_show_the_example_as_it_is() -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert f"```python\n{(EXAMPLE / 'tiny_resizer.py').read_text()}```" in docs
    study = (EXAMPLE / "study.toml").read_text()
    shown = docs.split("```toml\n[[experiments]]\n", 1)[1].split("```", 1)[0]
    assert "[[experiments]]\n" + shown in study


BROKEN: dict[str, tuple[str, str]] = {
    # name: (module source, the cause the one line names)
    "import": ("import not_installed_anywhere\n", "cannot import it: ModuleNotFoundError"),
    "raises": (
        """
        from downsizenet_hub.plugins import ResizerPlugin
        def build(**config):
            raise RuntimeError("out of ideas")
        plugin = ResizerPlugin("raises", build)
        """,
        "its builder raised RuntimeError: out of ideas",
    ),
    "signature": (
        """
        from torch import nn
        from downsizenet_hub.plugins import ResizerPlugin
        class Halver(nn.Module):
            def forward(self, x):
                return x[..., ::2, ::2]
        plugin = ResizerPlugin("signature", Halver)
        """,
        "Halver.forward(x) does not take the resizer call signature",
    ),
    "not_a_plugin": (
        "def plugin():\n    pass\n",
        "names a function, not a downsizenet_hub.plugins.ResizerPlugin",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_installed_plugin_is_one_line_naming_it_and_the_cause(
    case: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source, cause = BROKEN[case]
    write_module(tmp_path, monkeypatch, f"broken_{case}", source)
    install(monkeypatch, (case, f"broken_{case}:plugin"))
    line = _one_line_error(_pretrain(tmp_path, "--resizer", case))
    assert f"plugin 'broken_{case}' (entry point {case} = broken_{case}:plugin): " in line
    assert cause in line


@pytest.mark.parametrize("case", ["import", "raises", "signature"])
def test_a_broken_plugin_module_is_one_line_naming_it_and_the_cause(
    case: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source, cause = BROKEN[case]
    write_module(tmp_path, monkeypatch, f"broken_{case}", source)
    line = _one_line_error(_pretrain(tmp_path, "--resizer", case, "--plugin", f"broken_{case}"))
    assert f"plugin 'broken_{case}' (--plugin broken_{case}): " in line and cause in line


def test_a_plugin_cannot_take_a_built_in_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = """
        from downsizenet_hub.plugins import ResizerPlugin
        from downsizenet_hub.resizing.fixed import FixedResizer
        plugin = ResizerPlugin("bilinear", lambda: FixedResizer("nearest"))
        """
    write_module(tmp_path, monkeypatch, "clash", source)
    result = _invoke("hub", "list", "--plugin", "clash")
    line = _one_line_error(result)
    assert "plugin 'clash' (--plugin clash): 'bilinear' is a built-in resizer's name" in line
    # Installed under a built-in name: refused by every lookup, the built-in one included.
    install(monkeypatch, ("bilinear", "clash:plugin"))
    with pytest.raises(plugins.PluginError, match=r"plugin 'clash' \(entry point bilinear ="):
        create_resizer("bilinear")
    line = _one_line_error(_pretrain(tmp_path, "--resizer", "bilinear"))
    assert "'bilinear' is a built-in resizer's name, which a plugin cannot replace" in line


def test_two_plugins_cannot_register_one_name(
    monkeypatch: pytest.MonkeyPatch, example: None, tmp_path: Path
) -> None:
    install(monkeypatch, TINY)
    source = """
        from downsizenet_hub.plugins import ResizerPlugin
        from tiny_resizer import TinyResizer
        mine = ResizerPlugin("tiny_learned", TinyResizer)
        """
    write_module(tmp_path, monkeypatch, "copycat", source)
    line = _one_line_error(_invoke("hub", "list", "--plugin", "copycat"))
    assert "already registered by plugin 'tiny_resizer'" in line


def _study(resizers: list[Any]) -> Any:
    return study_config(
        {
            "name": "plugins",
            "seeds": [0],
            "variants": ["noisy"],
            "experiments": [{"kind": "segmentation", "title": "S", "resizers": resizers}],
        }
    )


def test_study_rows_name_plugin_resizers_and_key_them_by_plugin_and_version(
    monkeypatch: pytest.MonkeyPatch, example: None
) -> None:
    install(monkeypatch, TINY)
    row = {"label": "tiny-h4", "architecture": "tiny_learned", "hidden": 4}
    plan = plan_study(_study(["tiny_learned", row]))
    cells = {cell.resizer.label: cell for cell in plan.cells}
    assert "plugin" not in cells["bilinear"].spec()  # built-in cells are keyed as before
    plugin = {"name": "tiny_resizer", "version": "unknown"}
    assert cells["tiny_learned"].spec()["plugin"] == plugin
    assert cells["tiny-h4"].spec()["resizer_config"] == {
        "architecture": "tiny_learned", "channels": 3, "hidden": 4
    }  # fmt: skip
    # Another version of the plugin trains new cells; the built-in ones are untouched.
    loaded = plugins.get("tiny_learned")
    assert loaded is not None
    plugins._LOADED["tiny_learned"] = plugins.LoadedPlugin(loaded.plugin, "tiny_resizer", "0.2", "")
    again = {cell.resizer.label: cell for cell in plan_study(_study(["tiny_learned"])).cells}
    assert again["tiny_learned"].key != cells["tiny_learned"].key
    assert again["bilinear"].key == cells["bilinear"].key
    # The study file's own round trip keeps the plugin's name.
    assert _study(["tiny_learned", row]).to_dict()["experiments"][0]["resizers"] == [
        "tiny_learned", row
    ]  # fmt: skip


def test_study_rows_refuse_unknown_plugins_and_bad_plugin_configs(
    monkeypatch: pytest.MonkeyPatch, example: None
) -> None:
    with pytest.raises(ValueError, match="unknown resizer 'tiny_learned'"):
        resizer_spec("tiny_learned", "resizers[0]")
    install(monkeypatch, TINY)
    with pytest.raises(ValueError, match=r"resizers\[0\] \(tiny-x\): plugin 'tiny_resizer'.*"):
        resizer_spec({"label": "tiny-x", "architecture": "tiny_learned", "depth": 2}, "resizers[0]")
    with pytest.raises(ValueError, match="label 'tiny_learned' is taken"):
        resizer_spec({"label": "tiny_learned", "architecture": "tiny_learned", "hidden": 2}, "r")


@pytest.mark.slow
def test_the_worked_example_installed_trains_publishes_transfers_and_joins_a_study(
    tmp_path: Path, vgg_weights: Path
) -> None:
    """docs/plugins.md, end to end: pip-install examples/tiny-resizer (offline, into a folder of
    its own), then pretrain it, publish it, list it, transfer it frozen, and study it beside
    bilinear, each as a fresh ``downsizenet`` process."""
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source)  # built here, not in the repository
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
           "--no-build-isolation", "--target", str(site), str(source)]  # fmt: skip
    done = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
        "DOWNSIZENET_HOME": str(tmp_path / "home"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }

    def run(*args: str) -> str:
        command = [sys.executable, "-m", "downsizenet_hub", *args]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    tiny = ["--train-images", "8", "--val-images", "4", "--batch-size", "4", "--no-progress"]
    out = run("pretrain", "--resizer", "tiny_learned", "--scale", "0.5", "--epochs", "1",
              "--run-dir", str(tmp_path / "pre"), "--publish", "tests/tiny", *tiny)  # fmt: skip
    assert "published tests/tiny to the local hub" in out
    assert "tiny residual resizer (plugin tiny-resizer 0.1.0)" in run("hub", "list")
    assert "architecture `tiny_learned`" in run("hub", "show", "tests/tiny")
    out = run("transfer", "--resizer", "tests/tiny", "--scale", "0.5", "--epochs", "1",
              "--backbone-weights", str(vgg_weights), "--run-dir", str(tmp_path / "det"),
              "--train-images", "4", "--val-images", "2", "--batch-size", "2",
              "--no-progress")  # fmt: skip
    assert "unchanged after training: True" in out
    study = {
        "name": "plugin", "seeds": [0], "variants": ["noisy"], "grid_images": 1,
        "pretrain": {"epochs": 1, "batch_size": 4, "width": 8,
                     "data": {"train_images": 8, "val_images": 4, "image_size": [64, 64]}},
        "experiments": [{"kind": "segmentation", "title": "S", "scales": [0.5],
                         "resizers": ["tiny_learned"]}],
    }  # fmt: skip
    (tmp_path / "study.json").write_text(json.dumps(study))
    out = run("study", "--config", str(tmp_path / "study.json"), "--results-dir",
              str(tmp_path / "s"), "--no-progress")  # fmt: skip
    assert "2/2 cells finished" in out
    [cell] = (tmp_path / "s" / "cells").glob("seg-noisy-x0.5-tiny_learned-*/cell.json")
    spec = json.loads(cell.read_text())["spec"]
    assert spec["plugin"] == {"name": "tiny-resizer", "version": "0.1.0"}
    assert "| tiny_learned |" in (tmp_path / "s" / "results.md").read_text()
