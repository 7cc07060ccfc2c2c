"""Each value travels once through an experiment: ``--scale`` is checked once, where it enters
(the data options), and the checked target reaches the pipelines as it is; each arm's resizer is
resolved and constructed (or loaded) once. Training is stubbed out: these tests follow values."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from torch import nn

from downsizenet_hub import hub, registry
from downsizenet_hub.engine import TrainConfig
from downsizenet_hub.experiments import common, pretrain, pretrain_build, transfer
from downsizenet_hub.experiments.common import ArmResult, DataOptions
from downsizenet_hub.hub import names, refs
from downsizenet_hub.pipelines import target as pipeline_target


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, calls: list[Any]) -> None:
    """Replace ``module.name`` by a wrapper that records its first argument in ``calls``."""
    original = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0] if args else None)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> list[nn.Module]:
    """No data and no training: each arm's pipeline is recorded and reported as trained."""
    pipelines: list[nn.Module] = []

    def train_arm(name: str, pipeline: nn.Module, *args: Any, **kwargs: Any) -> Any:
        pipelines.append(pipeline)
        metrics = {"miou": 1.0, "pixel_accuracy": 1.0, "map_50": 1.0, "map": 1.0}
        return ArmResult(name, metrics, 0.0, 0.0, "run"), object()

    monkeypatch.setattr(DataOptions, "datasets", lambda self, task: ([], []))
    for module in (pretrain, transfer):
        monkeypatch.setattr(module, "train_arm", train_arm)
    monkeypatch.setattr(pretrain, "_measure", lambda net, val_set, options: {})
    return pipelines


def test_transfer_loads_each_arm_resizer_once_and_passes_the_checked_target(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    trained_baseline: Any,
    vgg_weights: Path,
    no_training: list[nn.Module],
) -> None:
    hub.publish(trained_baseline("talebi", {"filters": 4}, {"scale_factor": 0.5}), "tests/talebi")
    count: dict[str, list[Any]] = {}
    for label, module, name in [
        ("resolved", transfer, "resolve_resizer"),  # each arm's name, once, where it enters
        ("built", transfer, "create_resizer"),  # ... and built from the resolved value
        ("checked", registry, "_registered"),  # the one check of a resizer reference
        ("hub name", names, "validate_name"),  # a hub name's syntax
        ("located", refs, "locate"),  # where a published resizer lives
        ("by name", hub.files, "architecture"),  # its architecture, as config.json names it
        ("by type", hub.files, "architecture_of"),  # ... never looked up again by config type
        ("loaded", hub.files, "load_folder"),  # its files read
        ("scale", common, "resize_target"),
        ("scale again", pipeline_target, "resize_target"),
    ]:
        _counting(monkeypatch, module, name, count.setdefault(label, []))
    options = transfer.TransferOptions(
        data=DataOptions(scale=0.5, image_size=(96, 96)), resizer="tests/talebi",
        compare="bilinear", backbone_weights=str(vgg_weights), run_dir=tmp_path / "t",
        train=TrainConfig(epochs=1, batch_size=4), progress=False,
    )  # fmt: skip
    report = transfer.run_transfer(options)
    assert [arm.name for arm in report.arms] == ["tests/talebi", "bilinear"]
    once_per_arm = {"tests/talebi": 1, "bilinear": 1}
    assert Counter(count["resolved"]) == once_per_arm
    assert all(isinstance(ref, registry.ResizerRef) for ref in count["built"])
    assert Counter(ref.text for ref in count["built"]) == once_per_arm  # one construction per arm
    assert Counter(count["checked"]) == once_per_arm  # checked once, never again below
    assert count["hub name"] == ["tests/talebi"]  # parsed once: str -> HubRef -> ResolvedRef
    assert count["located"] == ["tests/talebi"]
    assert count["by name"] == ["talebi"] and count["by type"] == []
    assert len(count["loaded"]) == 1  # the published one read from disk once
    assert len(count["scale"]) == 1 and count["scale again"] == []  # --scale checked once
    assert all(p.target is options.data.target for p in no_training)  # type: ignore[union-attr]


def test_pretrain_constructs_each_arm_resizer_once_and_checks_strided_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_training: list[nn.Module]
) -> None:
    created: list[Any] = []
    configured: list[Any] = []
    rechecked: list[Any] = []
    _counting(monkeypatch, pretrain_build, "create_resizer", created)
    _counting(monkeypatch, pretrain_build, "arm_config", configured)
    _counting(monkeypatch, pipeline_target, "resize_target", rechecked)
    options = pretrain.PretrainOptions(
        data=DataOptions(scale=0.5, image_size=(96, 96)), resizer="strided",
        compare="downsizenet", train=TrainConfig(epochs=1, batch_size=4),
        run_dir=tmp_path / "p", progress=False,
    )  # fmt: skip
    report = pretrain.run_pretrain(options)
    assert [arm.name for arm in report.arms] == ["strided", "downsizenet"]
    assert Counter(created) == {"strided": 1, "downsizenet": 1}
    assert len(configured) == 2  # the 1/k rule of strided: once per arm
    assert rechecked == []
    assert all(p.target is options.data.target for p in no_training)  # type: ignore[union-attr]
