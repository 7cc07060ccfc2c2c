"""The learned baselines in the registry and the hub: built by name, stored, listed, loaded
strictly as their own class, refused when the files do not fit, and described on their cards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from downsizenet_hub import DownsizeNet, hub
from downsizenet_hub.hub.record import OutputStatistics, TrainingRecord
from downsizenet_hub.pipelines.detection import FrozenFront
from downsizenet_hub.pipelines.feature_cache import CachedFrozenFront
from downsizenet_hub.registry import create_resizer, is_fixed, list_resizers
from downsizenet_hub.resizing.fixed import FixedResizer
from downsizenet_hub.resizing.strided import StridedConfig, StridedResizer
from downsizenet_hub.resizing.talebi import TalebiConfig, TalebiResizer

#: (registered name, configuration, resize arguments it supports)
BASELINES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("talebi", {"residual_blocks": 2, "filters": 4}, {"scale_factor": 0.3}),
    ("strided", {"k": 2}, {"scale_factor": 0.5}),
]


@pytest.mark.parametrize(("name", "config", "resize"), BASELINES, ids=lambda x: str(x))
def test_the_registry_builds_and_lists_both(
    name: str, config: dict[str, Any], resize: dict[str, Any]
) -> None:
    model = create_resizer(name, **config)
    expected = {"talebi": TalebiResizer, "strided": StridedResizer}[name]
    assert type(model) is expected and name in list_resizers(fixed=False) and not is_fixed(name)
    side = {"talebi": 6, "strided": 10}[name]
    assert model(torch.rand(1, 3, 20, 20), **resize).shape == (1, 3, side, side)
    with pytest.raises(
        ValueError, match=r"unknown (TalebiConfig|StridedConfig) key\(s\) \['kernel'\]"
    ):
        create_resizer(name, kernel=3)


@pytest.mark.parametrize(("name", "config", "resize"), BASELINES, ids=lambda x: str(x))
def test_save_publish_load_round_trip_is_exact(
    name: str, config: dict[str, Any], resize: dict[str, Any], tmp_path: Path, trained_baseline: Any
) -> None:
    model = trained_baseline(name, config, resize)
    images = torch.rand(2, 3, 30, 30)
    with torch.no_grad():
        expected = model(images, **resize)
    hub.save_pretrained(model, tmp_path / "folder")
    hub.publish(model, f"tests/{name}")
    document = json.loads((tmp_path / "folder" / "config.json").read_text())
    assert document["architecture"] == name and document[name] == model.config.to_dict()
    state = load_file(str(tmp_path / "folder" / "model.safetensors"))
    assert any(key.endswith("running_mean") for key in state) == (name == "talebi")
    for ref in (str(tmp_path / "folder"), f"tests/{name}"):
        loaded = create_resizer(ref)
        assert type(loaded) is type(model) and not loaded.training
        assert loaded.config == model.config
        with torch.no_grad():
            assert torch.equal(loaded(images, **resize), expected)
    entry = {e.name: e for e in hub.list_published()}[f"tests/{name}"]
    assert entry.config == model.config and entry.problem is None
    # DownsizeNet.from_pretrained promises a DownsizeNet: it says where to load this one instead.
    with pytest.raises(ValueError, match=r"not a DownsizeNet; load it with .*create_resizer"):
        DownsizeNet.from_pretrained(f"tests/{name}")


def test_the_hf_hub_form_loads_a_baseline_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained_baseline: Any
) -> None:
    model = trained_baseline(*BASELINES[0])
    hub.save_pretrained(model, tmp_path / "snapshot")
    from downsizenet_hub.hub import remote

    monkeypatch.setattr(remote, "download", lambda ref, **_: tmp_path / "snapshot")
    loaded = create_resizer("hf-hub:someone/talebi")
    assert type(loaded) is TalebiResizer
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True)
    )


def _saved(tmp_path: Path, model: nn.Module) -> Path:
    folder = tmp_path / "talebi"
    hub.save_pretrained(model, folder)
    return folder


def test_an_unknown_architecture_is_refused_in_one_sentence(
    tmp_path: Path, trained_baseline: Any
) -> None:
    folder = _saved(tmp_path, trained_baseline(*BASELINES[0]))
    path = folder / "config.json"
    document = json.loads(path.read_text())
    document["architecture"] = "lanczosnet"
    document["lanczosnet"] = document.pop("talebi")
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError) as info:
        create_resizer(str(folder))
    message = str(info.value)
    assert "unknown architecture 'lanczosnet'" in message and str(path) in message
    assert "\n" not in message
    # `hub list` reports it as unreadable instead of failing.
    hub.publish(trained_baseline(*BASELINES[0]), "tests/x")
    (hub.local.local_path("tests/x") / "config.json").write_text(json.dumps(document))
    entry = {e.name: e for e in hub.list_published()}["tests/x"]
    assert entry.config is None and "unknown architecture" in (entry.problem or "")


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda s: s.pop("stem.4.running_var"), r"missing tensor\(s\) \['stem.4.running_var'\]"),
        (lambda s: s.update(extra=torch.zeros(1)), r"unexpected tensor\(s\) \['extra'\]"),
        (lambda s: s.update({"output.bias": torch.zeros(4)}), "has shape"),
        (
            lambda s: s.update({"stem.4.num_batches_tracked": torch.tensor(1.5)}),
            "expected torch.int64",
        ),
    ],
    ids=["missing-bn-buffer", "extra", "shape", "counter-dtype"],
)
def test_weights_that_do_not_fit_the_config_are_refused(
    tmp_path: Path, edit: Any, words: str, trained_baseline: Any
) -> None:
    folder = _saved(tmp_path, trained_baseline(*BASELINES[0]))
    path = folder / "model.safetensors"
    state = load_file(str(path))
    edit(state)
    save_file(state, str(path))
    with pytest.raises(ValueError, match=words):
        create_resizer(str(folder))


def test_a_config_of_another_architecture_than_the_weights_is_refused(
    tmp_path: Path, trained_baseline: Any
) -> None:
    folder = _saved(tmp_path, trained_baseline(*BASELINES[0]))
    path = folder / "config.json"
    document = {
        "format_version": 2,
        "architecture": "strided",
        "strided": StridedConfig().to_dict(),
    }
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"does not fit its config\.json"):
        create_resizer(str(folder))
    document["talebi"] = TalebiConfig().to_dict()  # a second config: which one is meant?
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['talebi'\]"):
        create_resizer(str(folder))


def test_hub_list_and_show_name_the_architecture_without_torch(
    tmp_path: Path, trained_baseline: Any
) -> None:
    home = Path(os.environ["DOWNSIZENET_HOME"])
    hub.publish(trained_baseline(*BASELINES[0]), "tests/talebi")
    hub.publish(trained_baseline(*BASELINES[1]), "tests/strided")
    probe = (
        "import sys\nsys.argv = ['downsizenet', 'hub', sys.argv[1], *sys.argv[2:]]\n"
        "from downsizenet_hub.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    env = {**os.environ, "DOWNSIZENET_HOME": str(home)}

    def run(*argv: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe, *argv], capture_output=True, text=True, env=env,
            timeout=120, check=True,
        )  # fmt: skip
        return done.stdout

    listed = run("list")
    assert listed.rstrip().endswith("NO-TORCH")
    assert "Talebi, 4 filters, 2 res blocks" in listed and "strided conv, 2x2 stride 2" in listed
    card = run("show", "tests/strided")
    assert card.rstrip().endswith("NO-TORCH")
    assert "architecture `strided`" in card and 'create_resizer("tests/strided")' in card


def _record(**extra: Any) -> TrainingRecord:
    outputs = OutputStatistics(
        images=4, values=1200, min=-0.25, max=1.5, mean=0.45, std=0.3,
        outside_input_range=0.125, outside_unit_range=0.0625, start="bilinear",
        moved_from_start=0.0123, moved_images=4,
    )  # fmt: skip
    return TrainingRecord(
        task="segmentation", pipeline="deeplabv3plus-tiny", dataset="scenes",
        generated_data=True, epochs=1, seed=0, metric="mIoU", score=0.3, command="downsizenet x",
        baseline_score=0.25, scale_factor=0.3, outputs=outputs, **extra,
    )  # fmt: skip


def test_the_card_states_the_architecture_and_the_output_statistics(
    tmp_path: Path, trained_baseline: Any
) -> None:
    model = trained_baseline(*BASELINES[0])
    hub.save_pretrained(model, tmp_path / "t", record=_record(), name="tests/t")
    card = (tmp_path / "t" / "README.md").read_text()
    assert card.count("# Talebi-Milanfar resizer `tests/t`") == 1
    assert "architecture `talebi`: 4 filters, 2 residual blocks" in card
    assert "| Output range | [-0.2500, 1.5000] |" in card
    assert "| Outside [0, 1] | 6.250% of values |" in card
    assert "| Outside the input image's range | 12.500% of values |" in card
    assert "Moved from bilinear (mean abs. difference, first 4 images) | 0.01230 |" in card
    assert "| this Talebi resizer | 0.3000 |" in card and "convex mix" not in card
    _, record = hub.load(tmp_path / "t")
    assert (
        record == _record()
    )  # the statistics survive config.json, so a re-rendered card keeps them


def test_the_feature_cache_key_names_the_resizer_not_only_its_tensors() -> None:
    trunk = nn.Conv2d(3, 2, 1).requires_grad_(False)
    salts = {
        CachedFrozenFront(FrozenFront(resizer, trunk, {"scale_factor": 0.5})).key_salt
        for resizer in (
            FixedResizer("bilinear"),
            FixedResizer("area"),
            DownsizeNet(conv_layers=0),
            DownsizeNet(conv_layers=0, coefficients="softmax"),  # the same tensors
            create_resizer("strided"),
        )
    }
    assert len(salts) == 5
