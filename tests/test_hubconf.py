"""hubconf.py through torch.hub with source="local": no network involved."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

from downsizenet_hub import DownsizeNet
from downsizenet_hub.hub import publish

REPO_ROOT = str(Path(__file__).resolve().parents[1])


def test_load_a_published_resizer_offline() -> None:
    published = DownsizeNet(conv_layers=1, channels=4, init="random")
    publish(published, "me/hubconf")
    loaded = torch.hub.load(REPO_ROOT, "downsizenet", source="local", pretrained="me/hubconf")
    images = torch.rand(1, 3, 9, 9)
    assert isinstance(loaded, DownsizeNet)
    assert torch.equal(loaded(images, size=(4, 4)), published(images, size=(4, 4)))


def test_fresh_resizer_with_config() -> None:
    fresh = torch.hub.load(REPO_ROOT, "downsizenet", source="local", neighbourhood="bicubic")
    assert isinstance(fresh, DownsizeNet) and fresh.config.neighbourhood == "bicubic"


def test_config_with_pretrained_is_refused() -> None:
    with pytest.raises(ValueError, match=r"takes its configuration from its config\.json"):
        torch.hub.load(REPO_ROOT, "downsizenet", source="local", pretrained="me/x", channels=8)


def test_missing_resizer_says_what_was_tried() -> None:
    with pytest.raises(FileNotFoundError, match="no resizer found for 'me/missing'"):
        torch.hub.load(REPO_ROOT, "downsizenet", source="local", pretrained="me/missing")


def _hubconf() -> ModuleType:
    """hubconf.py imported the way torch.hub imports it (a module from a file path)."""
    spec = importlib.util.spec_from_file_location("hubconf", Path(REPO_ROOT) / "hubconf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_entry_points_dependencies_and_help() -> None:
    module = _hubconf()
    assert module.dependencies == ["torch", "safetensors", "huggingface_hub"]
    # torch.hub.list: the public callables; torch.hub.help: the entry point's docstring.
    entries = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
    assert entries == ["downsizenet"]
    doc = module.downsizenet.__doc__
    assert "pretrained:" in doc and "DownsizeNetConfig fields" in doc
