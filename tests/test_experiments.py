"""pretrain and transfer end to end on tiny generated data, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torchvision.models import vgg16
from typer.testing import CliRunner

from downsizenet_hub import DownsizeNet
from downsizenet_hub.cli import app

TINY = ["--train-images", "8", "--val-images", "4", "--batch-size", "4", "--no-progress"]


def _run(*args: str) -> object:
    result = CliRunner().invoke(app, list(args))
    return result


def _pretrain(run_dir: Path, *extra: str) -> object:
    return _run(
        "pretrain", "--scale", "0.5", "--epochs", "1", "--run-dir", str(run_dir), *TINY, *extra
    )


def test_pretrain_compares_publishes_and_reuses(tmp_path: Path) -> None:
    result = _pretrain(tmp_path / "run", "--publish", "tests/seg")
    assert result.exit_code == 0, result.output
    assert "downsizenet" in result.output and "bilinear" in result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    names = [arm["name"] for arm in summary["arms"]]
    assert names == ["downsizenet", "bilinear"]
    assert all("miou" in arm["metrics"] for arm in summary["arms"])
    net = DownsizeNet.from_pretrained("tests/seg")
    hub_net = torch.hub.load(
        str(Path(__file__).parents[1]), "downsizenet", source="local", pretrained="tests/seg"
    )
    images = torch.rand(1, 3, 40, 40)
    torch.testing.assert_close(net(images, size=(20, 20)), hub_net(images, size=(20, 20)))
    # A second identical run reuses both finished arms instead of training again.
    again = _pretrain(tmp_path / "run", "--publish", "tests/seg", "--force")
    assert again.exit_code == 0, again.output
    assert again.output.count("(reused)") == 2
    torch.testing.assert_close(
        DownsizeNet.from_pretrained("tests/seg")(images, size=(20, 20)), net(images, size=(20, 20))
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--scale", "0.3", "--size", "90x90"], "exactly one of --size HxW or --scale S"),
        (["--size", "90by90"], "HxW"),
        (["--data", "imagenet"], "imagenet"),
        (["--resizer", "lanczos", "--publish", "a/b"], "--publish needs"),
        (["--publish", "../escape"], "name"),
        (["--neighbourhood", "cubic"], "neighbourhood"),
    ],
)
def test_pretrain_bad_options_are_one_line(tmp_path: Path, args: list[str], words: str) -> None:
    result = _run("pretrain", "--run-dir", str(tmp_path / "r"), *TINY, *args)
    assert result.exit_code != 0
    assert words in result.output
    assert "Traceback" not in result.output


def _random_vgg_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "vgg16_random.safetensors"
    save_file({k: v.contiguous() for k, v in vgg16().features.state_dict().items()}, str(path))
    return path


def test_transfer_trains_heads_behind_frozen_resizer(tmp_path: Path) -> None:
    DownsizeNet(init="random").save_pretrained(str(tmp_path / "resizer"))
    weights = _random_vgg_file(tmp_path)
    result = _run(
        "transfer", "--resizer", str(tmp_path / "resizer"), "--scale", "0.5", "--epochs", "2",
        "--backbone-weights", str(weights), "--run-dir", str(tmp_path / "t"), *TINY,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "unchanged after training: True" in result.output
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    for arm in summary["arms"]:
        assert "map_50" in arm["metrics"]
        cache = arm["extra"]["feature_cache"]
        # 8 train + 4 val images: computed once (epoch 1), then served from the cache.
        assert cache["misses"] == 12 and cache["hits"] >= 12


@pytest.mark.slow
def test_pretrain_under_torchrun_two_gloo_processes_only_rank0_publishes(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(port),
        "-m", "downsizenet_hub", "pretrain", "--scale", "0.5", "--epochs", "1",
        "--run-dir", str(tmp_path / "ddp"), "--publish", "tests/ddp", *TINY,
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("published tests/ddp to the local hub") == 1
    metrics = json.loads((tmp_path / "ddp" / "downsizenet" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["status"] == "completed"
    assert DownsizeNet.from_pretrained("tests/ddp") is not None


def test_pretrain_does_not_reuse_a_run_with_other_settings(tmp_path: Path) -> None:
    first = _pretrain(tmp_path / "run", "--compare", "none")
    assert first.exit_code == 0, first.output
    changed = _run(
        "pretrain", "--scale", "0.5", "--epochs", "2", "--run-dir", str(tmp_path / "run"),
        "--compare", "none", *TINY,
    )  # fmt: skip
    # The 1-epoch run is not passed off as a 2-epoch one: the engine refuses the folder instead.
    assert changed.exit_code != 0 and "(reused)" not in changed.output
    assert "checkpoint" in changed.output


def test_weight_moved_is_zero_at_the_classical_start_and_grows_with_the_logits() -> None:
    from downsizenet_hub.experiments.pretrain import weight_moved

    images = [(torch.rand(3, 40, 40), {}) for _ in range(3)]
    fresh = DownsizeNet()
    assert weight_moved(fresh, images, {"scale_factor": 0.3}) < 1e-3
    assert weight_moved(DownsizeNet.as_bilinear(), images, {"size": (12, 12)}) < 1e-6
    moved = DownsizeNet()
    with torch.no_grad():  # favour the top-left tap everywhere
        moved.head.bias.copy_(torch.tensor([4.0, -4.0, -4.0, -4.0]))
    assert 0.2 < weight_moved(moved, images, {"scale_factor": 0.3}) <= 1.0
    antialias = DownsizeNet(neighbourhood="antialias")  # compared with its own classical filter
    assert weight_moved(antialias, images, {"scale_factor": 0.3}) < 1e-3


def test_pretrain_reports_the_trained_resizer_and_how_far_it_moved(tmp_path: Path) -> None:
    from downsizenet_hub.engine import TrainConfig
    from downsizenet_hub.experiments.common import DataOptions
    from downsizenet_hub.experiments.pretrain import PretrainOptions, run_pretrain

    options = PretrainOptions(
        data=DataOptions(scale=0.5, train_images=8, val_images=4),
        compare="bilinear",
        train=TrainConfig(epochs=1, batch_size=4, lr=1e-2),
        run_dir=tmp_path / "run",
        progress=False,
    )
    report = run_pretrain(options)
    assert isinstance(report.resizer, DownsizeNet) and not report.resizer.training
    moved = report.arms[0].extra["weight_moved"]
    assert 0.0 < moved < 1.0 and "weight_moved" not in report.arms[1].extra
    # A reused run measures the same resizer again, from its final checkpoint.
    again = run_pretrain(options)
    assert again.arms[0].reused and again.arms[0].extra["weight_moved"] == pytest.approx(moved)
