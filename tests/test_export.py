"""ONNX and TorchScript export, checked against PyTorch; the ``export`` command."""

from __future__ import annotations

import copy
import doctest
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from typer.testing import CliRunner

from downsizenet_hub import DownsizeNet
from downsizenet_hub.cli.app import app
from downsizenet_hub.tools import export, export_geometry
from downsizenet_hub.tools.export import ExportError, export_onnx, export_torchscript
from downsizenet_hub.tools.export_geometry import first_float32_flip

ATOL = 1e-4
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


def _textured(neighbourhood: str = "bilinear") -> DownsizeNet:
    net = DownsizeNet(neighbourhood=neighbourhood)
    with torch.no_grad():
        net.head.weight.normal_(0.0, 0.5)
    return net.eval()


def _onnx_run(path: Path, images: torch.Tensor) -> torch.Tensor:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": images.numpy()})[0])


def _torchscript(path: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", FutureWarning
        )  # torch.jit is deprecated in favour of export
        return torch.jit.load(str(path))


def test_onnx_fixed_size_matches_pytorch(tmp_path: Path) -> None:
    # 50 -> 18 columns: output column 4's centre lies exactly on an input pixel edge, where a
    # geometry computed in the graph (float32 scalars) would pick another anchor.
    net = _textured()
    result = export_onnx(net, tmp_path / "r.onnx", size=(14, 18), input_size=(40, 50))
    assert result.input_shape == ("batch", 3, 40, 50)
    assert result.output_shape == ("batch", 3, 14, 18)
    assert result.max_abs_error <= ATOL
    images = torch.rand(3, 3, 40, 50)  # another batch size than the export example
    with torch.no_grad():
        expected = net(images, size=(14, 18))
    torch.testing.assert_close(_onnx_run(tmp_path / "r.onnx", images), expected, atol=ATOL, rtol=0)
    metadata = {p.key: p.value for p in onnx.load(str(tmp_path / "r.onnx")).metadata_props}
    assert metadata["downsizenet.target"] == "size=(14, 18)"
    # A fixed-size model refuses other input sizes rather than resizing them wrongly.
    with pytest.raises(Exception, match=r"(?i)dimension|shape"):
        _onnx_run(tmp_path / "r.onnx", torch.rand(1, 3, 41, 50))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.onnx"]  # no temporary or .data left
    assert (tmp_path / "r.onnx").stat().st_mode & 0o777 == 0o644


def test_torchscript_fixed_size_with_dynamic_batch_and_a_shape_guard(tmp_path: Path) -> None:
    net = _textured("bicubic")
    result = export_torchscript(net, tmp_path / "r.pt", scale_factor=0.4, input_size=(30, 40))
    assert result.output_shape == ("batch", 3, 12, 16) and result.max_abs_error <= ATOL
    loaded = _torchscript(tmp_path / "r.pt")
    images = torch.rand(5, 3, 30, 40)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), net(images, scale_factor=0.4), atol=ATOL, rtol=0)
    with pytest.raises(Exception, match=r"takes \(B, 3, 30, 40\) float images"):
        loaded(torch.rand(1, 3, 31, 40))


@pytest.mark.parametrize("neighbourhood", ["bilinear", "antialias"])
def test_dynamic_input_with_a_fixed_output_size_is_refused_for_downsizenet(
    tmp_path: Path, neighbourhood: str
) -> None:
    with pytest.raises(ValueError, match="computes the scale H/h in float32"):
        export_onnx(_textured(neighbourhood), tmp_path / "r.onnx", size=(10, 10), dynamic=True)
    assert not list(tmp_path.iterdir())


def test_dynamic_scale_whose_inverse_float32_breaks_is_refused(tmp_path: Path) -> None:
    # 1 / 0.6 in float32 moves output pixel 1's anchor: (1.5 / 0.6 - 0.5) is exactly 2.
    assert first_float32_flip(0.6, "bilinear") == 1
    assert first_float32_flip(0.35, "antialias") is None
    with pytest.raises(ValueError, match="output pixel 1"):
        export_onnx(_textured(), tmp_path / "r.onnx", scale_factor=0.6, dynamic=True)
    assert not list(tmp_path.iterdir())


def test_fixed_resizers_can_take_a_dynamic_input_with_a_fixed_output_size(tmp_path: Path) -> None:
    result = export_onnx("bilinear", tmp_path / "r.onnx", size=(10, 12), dynamic=True)
    assert result.input_shape == ("batch", 3, "height", "width")
    assert result.output_shape == ("batch", 3, 10, 12)
    images = torch.rand(2, 3, 57, 33)
    expected = torch.nn.functional.interpolate(images, size=(10, 12), mode="bilinear")
    torch.testing.assert_close(_onnx_run(result.path, images), expected, atol=ATOL, rtol=0)


def test_unfaithful_exports_are_refused_and_leave_the_old_file(tmp_path: Path) -> None:
    # PyTorch's ONNX translation of antialiased bilinear with a scale factor uses another filter
    # width than PyTorch's own kernel (about 0.16 apart on random images).
    target = tmp_path / "r.onnx"
    target.write_bytes(b"previous")
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_onnx("antialias", target, scale_factor=0.35, input_size=(80, 90))
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.onnx"]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs input_size"):
        export_onnx("bilinear", tmp_path / "r.onnx", size=8)
    with pytest.raises(ValueError, match="needs input_size"):
        export_torchscript("bilinear", tmp_path / "r.pt", size=8)
    with pytest.raises(ValueError, match="input_size must be"):
        export_torchscript("bilinear", tmp_path / "r.pt", size=8, input_size=(0, 5))
    with pytest.raises(ValueError, match="exactly one of size"):
        export_torchscript("bilinear", tmp_path / "r.pt", input_size=(20, 20))
    with pytest.raises(ValueError, match="at least one pixel"):
        export_torchscript("bilinear", tmp_path / "r.pt", scale_factor=0.01, input_size=(20, 20))


# Every supported DownsizeNet combination (dynamic input with a fixed size is refused, above).
_SUPPORTED = [
    (neighbourhood, target, dynamic)
    for neighbourhood in ("bilinear", "bicubic", "antialias")
    for target in ({"size": (12, 15)}, {"scale_factor": 0.35})
    for dynamic in (False, True)
    if not (dynamic and "size" in target)
]


@pytest.mark.slow
@pytest.mark.parametrize(("neighbourhood", "target", "dynamic"), _SUPPORTED)
def test_onnx_matrix(tmp_path: Path, neighbourhood: str, target: dict, dynamic: bool) -> None:
    """Each export runs in onnxruntime as the module does; a dynamic one (a scale factor) takes
    any batch and input size, and the output size follows the input's."""
    net = _textured(neighbourhood)
    result = export_onnx(net, tmp_path / "r.onnx", input_size=(48, 56), dynamic=dynamic, **target)
    assert result.max_abs_error <= ATOL
    if dynamic:
        assert result.input_shape == ("batch", 3, "height", "width")
        assert len(result.checked_shapes) == 4
    shapes = [(2, 3, 48, 56)] + ([(1, 3, 97, 61), (3, 3, 40, 150)] if dynamic else [])
    for shape in shapes:
        images = torch.rand(shape)
        with torch.no_grad():
            expected = net(images, **target)
        torch.testing.assert_close(_onnx_run(result.path, images), expected, atol=ATOL, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "area", "antialias", "nearest"])
@pytest.mark.parametrize("target", [{"size": (12, 15)}, {"scale_factor": 0.35}])
def test_fixed_resizers_export_or_are_refused(tmp_path: Path, mode: str, target: dict) -> None:
    ts = export_torchscript(mode, tmp_path / "r.pt", input_size=(48, 56), **target)
    assert ts.max_abs_error <= ATOL  # tracing F.interpolate is always faithful
    try:
        result = export_onnx(mode, tmp_path / "r.onnx", input_size=(48, 56), **target)
    except ExportError:
        assert not (tmp_path / "r.onnx").exists()
        return
    images = torch.rand(2, 3, 48, 56)
    from downsizenet_hub.registry import create_resizer

    expected = create_resizer(mode)(images, **target)
    np.testing.assert_allclose(_onnx_run(result.path, images).numpy(), expected.numpy(), atol=ATOL)


# ---------------------------------------------------------------- the command
def test_export_command_torchscript(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "export",
            "bilinear",
            "--torchscript",
            str(tmp_path / "r.pt"),
            "--scale",
            "0.5",
            "--input-size",
            "32x48",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "(batch, 3, 32, 48) -> (batch, 3, 16, 24)" in result.output
    assert _torchscript(tmp_path / "r.pt")(torch.rand(2, 3, 32, 48)).shape == (2, 3, 16, 24)


def test_export_command_onnx(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "export",
            "downsizenet",
            "--onnx",
            str(tmp_path / "r.onnx"),
            "--size",
            "16x16",
            "--input-size",
            "40x40",
        ],
    )
    assert result.exit_code == 0, result.output
    assert _onnx_run(tmp_path / "r.onnx", torch.rand(1, 3, 40, 40)).shape == (1, 3, 16, 16)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--size", "8x8", "--input-size", "20x20"],
            "exactly one of --onnx FILE or --torchscript FILE",
        ),
        (["--torchscript", "r.pt", "--onnx", "r.onnx", "--size", "8"], "exactly one of --onnx"),
        (
            ["--torchscript", "r.pt", "--input-size", "20x20"],
            "exactly one of --size HxW or --scale S",
        ),
        (["--torchscript", "r.pt", "--size", "8"], "needs --input-size"),
        (
            ["--torchscript", "r.pt", "--size", "8", "--input-size", "20x20", "--dynamic"],
            "--dynamic needs --onnx",
        ),
    ],
)
def test_export_command_bad_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["export", "bilinear", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


def test_export_command_unknown_resizer(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "export",
            "nobody/nothing",
            "--torchscript",
            str(tmp_path / "r.pt"),
            "--size",
            "8",
            "--input-size",
            "20x20",
        ],
    )
    assert result.exit_code == 2
    assert "nobody/nothing" in result.output and len(result.output.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_docstring_examples_run() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load in the example
        results = [doctest.testmod(module) for module in (export, export_geometry)]
    assert all(r.attempted > 0 and r.failed == 0 for r in results)


@pytest.mark.slow
def test_compiled_resizer_matches_eager() -> None:
    # torch.compile is how a GPU user fuses the gather and mix (README, Performance); the CPU
    # timings say it does not pay there, but the resizer must stay traceable and exact.
    torch.manual_seed(0)
    eager = DownsizeNet(neighbourhood="antialias").eval()
    with torch.no_grad():  # a trained-looking resizer: coefficients away from the classical start
        for parameter in eager.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    compiled = copy.deepcopy(eager)
    compiled.compile()
    images = torch.rand(2, 3, 23, 31)
    with torch.inference_mode():
        expected = eager(images, size=(9, 12))
        actual = compiled(images, size=(9, 12))
        classical = DownsizeNet(neighbourhood="antialias").eval()(images, size=(9, 12))
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    assert (expected - classical).abs().max() > 1e-3  # the check compares learned coefficients
