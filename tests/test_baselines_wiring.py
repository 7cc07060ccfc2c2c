"""The learned baselines wired in: built by name, stored in and loaded from the hub, trained by
``pretrain``, frozen by ``transfer``."""

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


def trained_like(name: str, config: dict[str, Any], resize: dict[str, Any]) -> nn.Module:
    """A baseline whose every tensor (batch-norm statistics included) is off its start."""
    model = create_resizer(name, **config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.train()
    model(torch.rand(4, 3, 24, 24), **resize)  # moves the running statistics
    return model.eval()


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
    name: str, config: dict[str, Any], resize: dict[str, Any], tmp_path: Path
) -> None:
    model = trained_like(name, config, resize)
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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = trained_like(*BASELINES[0])
    hub.save_pretrained(model, tmp_path / "snapshot")
    from downsizenet_hub.hub import remote

    monkeypatch.setattr(remote, "download", lambda ref, **_: tmp_path / "snapshot")
    loaded = create_resizer("hf-hub:someone/talebi")
    assert type(loaded) is TalebiResizer
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True)
    )


def _saved(tmp_path: Path) -> Path:
    folder = tmp_path / "talebi"
    hub.save_pretrained(trained_like(*BASELINES[0]), folder)
    return folder


def test_an_unknown_architecture_is_refused_in_one_sentence(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
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
    hub.publish(trained_like(*BASELINES[0]), "tests/x")
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
    tmp_path: Path, edit: Any, words: str
) -> None:
    folder = _saved(tmp_path)
    path = folder / "model.safetensors"
    state = load_file(str(path))
    edit(state)
    save_file(state, str(path))
    with pytest.raises(ValueError, match=words):
        create_resizer(str(folder))


def test_a_config_of_another_architecture_than_the_weights_is_refused(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
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


def test_hub_list_and_show_name_the_architecture_without_torch(tmp_path: Path) -> None:
    home = Path(os.environ["DOWNSIZENET_HOME"])
    hub.publish(trained_like(*BASELINES[0]), "tests/talebi")
    hub.publish(trained_like(*BASELINES[1]), "tests/strided")
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


def test_the_card_states_the_architecture_and_the_output_statistics(tmp_path: Path) -> None:
    model = trained_like(*BASELINES[0])
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


# ---------------------------------------------------------------------------- pretrain, transfer
TINY = ["--train-images", "8", "--val-images", "4", "--batch-size", "4", "--no-progress"]


@pytest.fixture(scope="module")
def scenes_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny scenes data (8 train, 4 val), generated once for this module's tests."""
    from downsizenet_hub.experiments.common import DataOptions

    home = tmp_path_factory.mktemp("scenes_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOWNSIZENET_HOME", str(home))
        DataOptions(train_images=8, val_images=4).datasets("segmentation")
    return home / "data"


@pytest.fixture
def tiny_scenes(scenes_data: Path, isolated_home: Path) -> None:
    """This test's home reuses the generated scenes instead of generating them again."""
    (isolated_home / "data").symlink_to(scenes_data, target_is_directory=True)


def test_pretrain_talebi_publishes_a_loadable_resizer_with_its_output_statistics(
    tmp_path: Path,
    tiny_scenes: None,
) -> None:
    from downsizenet_hub.engine import TrainConfig
    from downsizenet_hub.experiments.common import DataOptions
    from downsizenet_hub.experiments.output_stats import output_statistics
    from downsizenet_hub.experiments.pretrain import PretrainOptions, run_pretrain

    data = DataOptions(scale=0.5, train_images=8, val_images=4, image_size=(96, 96))
    options = PretrainOptions(
        data=data, resizer="talebi", resizer_config={"filters": 4}, compare=None,
        train=TrainConfig(epochs=1, batch_size=4, lr=1e-2), run_dir=tmp_path / "run",
        publish="tests/talebi", progress=False,
    )  # fmt: skip
    report = run_pretrain(options)
    trained = report.resizer
    assert isinstance(trained, TalebiResizer) and not trained.training
    loaded, record = hub.load("tests/talebi")
    assert type(loaded) is TalebiResizer and loaded.config.filters == 4
    _, val_set = data.datasets("segmentation")
    images = torch.stack([val_set[i][0].as_subclass(torch.Tensor) for i in range(len(val_set))])
    with torch.no_grad():
        assert torch.equal(loaded(images, scale_factor=0.5), trained(images, scale_factor=0.5))
    assert record is not None and record.outputs is not None
    outputs = record.outputs
    assert outputs.images == outputs.moved_images == 4 and outputs.start == "bilinear"
    measured = output_statistics(loaded, images, scale_factor=0.5)
    for key, value in measured.items():
        assert getattr(outputs, key) == pytest.approx(value, rel=1e-6, abs=1e-12)
    with torch.no_grad():
        start = torch.nn.functional.interpolate(images, scale_factor=0.5, mode="bilinear")
        moved = float((loaded(images, scale_factor=0.5) - start).abs().mean())
    assert outputs.moved_from_start == pytest.approx(moved, rel=1e-5) and moved > 0
    assert report.arms[0].extra["outputs"]["moved_from_start"] == outputs.moved_from_start
    card = hub.show("tests/talebi")
    assert "## Output statistics" in card and "| Outside [0, 1] |" in card
    assert "(see [Output statistics](#output-statistics))" in card
    assert "weight_moved" not in report.arms[0].extra
    # A second identical run reuses the arm: its weights (BN statistics too) come back from the
    # final checkpoint, so it measures and republishes the same resizer.
    options.force = True
    again = run_pretrain(options)
    assert (
        again.arms[0].reused and again.arms[0].extra["outputs"] == report.arms[0].extra["outputs"]
    )
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            create_resizer("tests/talebi").state_dict().values(),
            trained.state_dict().values(),
            strict=True,
        )
    )


def test_the_pretrain_command_configures_the_baselines_from_their_own_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from downsizenet_hub.cli import app
    from downsizenet_hub.experiments import pretrain

    seen: list[Any] = []

    def record_options(options: Any) -> Any:
        seen.append(options)
        raise ValueError("stop here")

    monkeypatch.setattr(pretrain, "run_pretrain", record_options)
    for resizer, extra, config in [
        ("talebi", ["--residual-blocks", "2", "--conv-layers", "1"], {"residual_blocks": 2}),
        ("strided", ["--scale", "0.5", "--neighbourhood", "bicubic"], {}),
        ("downsizenet", ["--conv-layers", "1"], {"neighbourhood": "bilinear", "conv_layers": 1}),
    ]:
        result = CliRunner().invoke(
            app, ["pretrain", "--resizer", resizer, "--run-dir", str(tmp_path), *TINY, *extra]
        )
        assert "stop here" in result.output
        assert seen[-1].resizer == resizer and seen[-1].resizer_config == config


def test_pretrain_strided_trains_at_one_over_k_and_refuses_other_scales(
    tmp_path: Path, tiny_scenes: None
) -> None:
    from typer.testing import CliRunner

    from downsizenet_hub.cli import app
    from downsizenet_hub.engine import TrainConfig
    from downsizenet_hub.experiments.common import DataOptions
    from downsizenet_hub.experiments.pretrain import PretrainOptions, run_pretrain

    for args in (["--scale", "0.3"], ["--size", "90x90"], []):  # [] is the default x0.3
        refused = CliRunner().invoke(
            app, ["pretrain", "--resizer", "strided", "--run-dir", str(tmp_path / "run"),
                  *TINY, *args],
        )  # fmt: skip
        assert refused.exit_code == 2 and "Traceback" not in refused.output
        assert "--resizer strided downsizes by 1/k only" in refused.output
        assert len(refused.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # refused before any run folder was made
    report = run_pretrain(
        PretrainOptions(
            data=DataOptions(scale=0.25, train_images=8, val_images=4, image_size=(96, 96)),
            resizer="strided", compare=None, train=TrainConfig(epochs=1, batch_size=4, lr=1e-2),
            run_dir=tmp_path / "run", publish="tests/strided", progress=False,
        )
    )  # fmt: skip
    assert report.arms[0].extra["outputs"]["start"] == "area"
    loaded = create_resizer("tests/strided")
    assert isinstance(loaded, StridedResizer) and loaded.config.k == 4
    assert isinstance(report.resizer, StridedResizer)
    assert torch.equal(loaded.conv.weight, report.resizer.conv.weight)


def _random_vgg_file(tmp_path: Path) -> Path:
    from torchvision.models.vgg import cfgs, make_layers  # VGG16's features, no classifier

    path = tmp_path / "vgg16_random.safetensors"
    save_file(
        {k: v.contiguous() for k, v in make_layers(cfgs["D"]).state_dict().items()}, str(path)
    )
    return path


def test_transfer_keeps_a_published_talebi_frozen_batch_norm_statistics_included(
    tmp_path: Path, tiny_scenes: None
) -> None:
    from downsizenet_hub.engine import TrainConfig
    from downsizenet_hub.experiments.common import DataOptions
    from downsizenet_hub.experiments.transfer import TransferOptions, run_transfer

    model = trained_like("talebi", {"filters": 4}, {"scale_factor": 0.5})
    hub.publish(model, "tests/talebi")
    before = {key: value.clone() for key, value in model.state_dict().items()}
    report = run_transfer(
        TransferOptions(
            data=DataOptions(scale=0.5, train_images=8, val_images=4, image_size=(96, 96)),
            resizer="tests/talebi", compare=None, cache_features=False,
            backbone_weights=str(_random_vgg_file(tmp_path)), run_dir=tmp_path / "t",
            train=TrainConfig(epochs=1, batch_size=4, lr=1e-2), progress=False,
        )
    )  # fmt: skip
    # The run's own check: the resizer's state dict (BN statistics included) is bit-identical.
    assert report.arms[0].extra["frozen_unchanged"] is True
    summary = json.loads(report.summary_path.read_text())
    assert (
        summary["arms"][0]["name"] == "tests/talebi" and "map_50" in summary["arms"][0]["metrics"]
    )
    after = create_resizer("tests/talebi").state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_the_transfer_pipeline_freezes_a_baseline_and_keeps_it_in_eval_mode() -> None:
    from downsizenet_hub.experiments.transfer import TransferOptions, build_pipeline

    resizer = trained_like("talebi", {"filters": 4}, {"scale_factor": 0.5}).train()
    before = {key: value.clone() for key, value in resizer.state_dict().items()}
    trunk = nn.Conv2d(3, 8, 3, stride=8).requires_grad_(False)
    trunk.out_channels, trunk.stride = 8, 8  # type: ignore[assignment]
    options = TransferOptions(cache_features=False)
    pipeline = build_pipeline(options, resizer, trunk, num_classes=3)
    pipeline.train()
    assert not resizer.training and not any(p.requires_grad for p in resizer.parameters())
    images = torch.rand(2, 3, 64, 64)
    targets = [
        {"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([1])}
        for _ in range(2)
    ]
    optimizer = torch.optim.SGD([p for p in pipeline.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        pipeline(images, targets)["loss"].backward()
        optimizer.step()
    after = resizer.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)
