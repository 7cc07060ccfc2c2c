"""The learned baselines trained by ``pretrain`` (measured by their outputs, published, reused)
and frozen by ``transfer`` (batch-norm statistics included), on tiny generated scenes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from downsizenet_hub import hub
from downsizenet_hub.registry import create_resizer
from downsizenet_hub.resizing.strided import StridedResizer
from downsizenet_hub.resizing.talebi import TalebiResizer

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

    for args, option in [
        (["--resizer", "strided", "--scale", "0.3"], "--resizer"),
        (["--resizer", "strided", "--size", "90x90"], "--resizer"),
        (["--resizer", "strided"], "--resizer"),  # the default scale, x0.3
        (["--resizer", "bilinear", "--compare", "strided", "--scale", "0.3"], "--compare"),
    ]:
        refused = CliRunner().invoke(
            app, ["pretrain", "--run-dir", str(tmp_path / "run"), *TINY, *args]
        )
        assert refused.exit_code == 2 and "Traceback" not in refused.output
        assert f"{option} strided downsizes by 1/k only" in refused.output
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
    tmp_path: Path, tiny_scenes: None, trained_baseline: Any
) -> None:
    from downsizenet_hub.engine import TrainConfig
    from downsizenet_hub.experiments.common import DataOptions
    from downsizenet_hub.experiments.transfer import TransferOptions, run_transfer

    model = trained_baseline("talebi", {"filters": 4}, {"scale_factor": 0.5})
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


def test_the_transfer_pipeline_freezes_a_baseline_and_keeps_it_in_eval_mode(
    trained_baseline: Any,
) -> None:
    from downsizenet_hub.experiments.transfer import TransferOptions, build_pipeline

    resizer = trained_baseline("talebi", {"filters": 4}, {"scale_factor": 0.5}).train()
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


def test_transfer_refuses_a_published_strided_resizer_at_another_scale_before_building_anything(
    tmp_path: Path, trained_baseline: Any
) -> None:
    from typer.testing import CliRunner

    from downsizenet_hub.cli import app

    hub.publish(trained_baseline("strided", {"k": 2}, {"scale_factor": 0.5}), "tests/strided")
    refused = CliRunner().invoke(
        app, ["transfer", "--resizer", "tests/strided", "--scale", "0.3",
              "--run-dir", str(tmp_path / "t"), *TINY],
    )  # fmt: skip
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert refused.output.startswith(
        "error: --resizer tests/strided cannot resize these images: a stride-2 StridedResizer "
        "only downsizes by 1/2"
    )
    assert "300x300 image" in refused.output and len(refused.output.strip().splitlines()) == 1
    assert not (tmp_path / "t").exists()
