"""DownsizeNet: exact special cases, start-as-bilinear, convexity, gradients, devices, bad input."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import onnxruntime
import pytest
import torch
import torch.nn.functional as F

from downsizenet_hub import DownsizeNet, DownsizeNetConfig

CONFIGS = [
    dict(neighbourhood=n, coefficients=c, use_distance=d, conv_layers=layers)
    for n, c, d, layers in itertools.product(
        ("bilinear", "bicubic", "antialias"),
        ("sigmoid", "softmax", "linear"),
        (True, False),
        (0, 2),
    )
    if layers or d
]


def _random_calls(seed: int, count: int, up: bool = True) -> list[tuple[tuple[int, ...], dict]]:
    """Random (input shape, resize kwargs) pairs: sizes and scale factors, up and down."""
    rng = random.Random(seed)
    calls = []
    while len(calls) < count:
        shape = (rng.randint(1, 3), rng.choice((1, 3, 5)), rng.randint(1, 48), rng.randint(1, 48))
        h, w = shape[-2:]
        if rng.random() < 0.5:
            top = 2.5 if up else 1.0
            kwargs: dict[str, Any] = {
                "size": (
                    max(1, int(h * rng.uniform(0.1, top))),
                    max(1, int(w * rng.uniform(0.1, top))),
                )
            }
        else:
            s = rng.uniform(0.1, 2.5 if up else 1.0)
            if int(h * s) < 1 or int(w * s) < 1:
                continue
            kwargs = {"scale_factor": s}
        calls.append((shape, kwargs))
    return calls


@pytest.mark.parametrize(("shape", "kwargs"), _random_calls(0, 60))
def test_as_bilinear_equals_interpolate(shape: tuple[int, ...], kwargs: dict) -> None:
    images = torch.rand(shape)
    expected = F.interpolate(
        images, mode="bilinear", align_corners=False, antialias=False, **kwargs
    )
    actual = DownsizeNet.as_bilinear()(images, **kwargs)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def _antialias_reference(images: torch.Tensor, kwargs: dict) -> torch.Tensor:
    """PyTorch's antialiased bilinear; one axis at a time when the output is one pixel wide.

    The two passes are exactly the separable filter. The fused CPU kernel returns identical rows
    when the output width is 1 (it disagrees with its own two-pass result there), so the
    reference uses the passes in that case.
    """
    options = dict(mode="bilinear", align_corners=False, antialias=True)
    fused = F.interpolate(images, **options, **kwargs)
    if fused.shape[-1] > 1:
        return fused
    if "size" in kwargs:
        h, w = kwargs["size"]
        rows = F.interpolate(images, size=(h, images.shape[-1]), **options)
        return F.interpolate(rows, size=(h, w), **options)
    s = kwargs["scale_factor"]
    rows = F.interpolate(images, scale_factor=(s, 1.0), **options)
    return F.interpolate(rows, scale_factor=(1.0, s), **options)


@pytest.mark.parametrize(("shape", "kwargs"), _random_calls(1, 60, up=False))
def test_as_antialiased_equals_interpolate_when_downsizing(
    shape: tuple[int, ...], kwargs: dict
) -> None:
    images = torch.rand(shape)
    actual = DownsizeNet.as_antialiased()(images, **kwargs)
    expected = _antialias_reference(images, kwargs)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("in_size", "kwargs"),
    [((300, 300), {"size": (160, 160)}), ((513, 513), {"size": (179, 179)}),
     ((64, 128), {"scale_factor": 0.3}), ((40, 30), {"size": (97, 71)})],
)  # fmt: skip
@pytest.mark.parametrize("neighbourhood", ["bilinear", "bicubic", "antialias"])
@pytest.mark.parametrize("coefficients", ["sigmoid", "softmax"])
def test_trainable_starts_as_bilinear(
    in_size: tuple[int, int], kwargs: dict, neighbourhood: str, coefficients: str
) -> None:
    net = DownsizeNet(neighbourhood=neighbourhood, coefficients=coefficients)
    images = torch.rand(2, 3, *in_size)
    antialias = neighbourhood == "antialias"
    expected = F.interpolate(images, mode="bilinear", antialias=antialias, **kwargs)
    with torch.no_grad():
        torch.testing.assert_close(net(images, **kwargs), expected, atol=1e-3, rtol=0)


def test_paper_shapes() -> None:
    net = DownsizeNet()
    assert net(torch.rand(1, 3, 300, 300), size=(160, 160)).shape == (1, 3, 160, 160)
    assert net(torch.rand(1, 3, 513, 513), size=(179, 179)).shape == (1, 3, 179, 179)
    with torch.no_grad():
        out = net(torch.rand(1, 3, 1024, 2048), scale_factor=0.3)
    assert out.shape == (1, 3, 307, 614)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_output_is_convex_mix_for_any_weights(config: dict) -> None:
    net = DownsizeNet(init="random", **config)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 3.0)
    images = torch.rand(2, 3, 23, 31) * 4 - 2
    for kwargs in ({"size": (9, 14)}, {"scale_factor": 1.7}, {"scale_factor": 0.26}):
        with torch.no_grad():
            coefficients = net.coefficient_maps(images, **kwargs)
            out = net(images, **kwargs)
        assert (coefficients >= 0).all()
        torch.testing.assert_close(
            coefficients.sum(dim=(-2, -1)), torch.ones(coefficients.shape[:3])
        )
        assert out.min() >= images.min() - 1e-5 and out.max() <= images.max() + 1e-5
        constant = torch.full_like(images, 0.37)
        with torch.no_grad():
            torch.testing.assert_close(net(constant, **kwargs), torch.full_like(out, 0.37))


def test_each_output_pixel_stays_within_its_neighbours() -> None:
    """A checkerboard of 0/1 with one hot pixel: only outputs whose 2x2 taps touch it exceed 1."""
    net = DownsizeNet(init="random")
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 3.0)
    images = torch.zeros(1, 3, 16, 16)
    images[..., 5, 7] = 10.0
    with torch.no_grad():
        out = net(images, size=(8, 8))
    # Output (i, j) reads rows/cols floor((i + .5) * 2 - .5) and +1, i.e. 2i and 2i+1.
    hot = out[0, 0] > 0
    assert hot.nonzero().tolist() == [[2, 3]]


def test_gradients_reach_every_parameter() -> None:
    for neighbourhood in ("bilinear", "bicubic", "antialias"):
        net = DownsizeNet(neighbourhood=neighbourhood)
        images = torch.rand(2, 3, 20, 24)
        (net(images, scale_factor=0.45) * torch.randn(2, 3, 9, 10)).sum().backward()
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, (neighbourhood, name)


@pytest.mark.parametrize("neighbourhood", ["bilinear", "bicubic", "antialias"])
@pytest.mark.parametrize("coefficients", ["sigmoid", "softmax"])
def test_gradcheck_float64(neighbourhood: str, coefficients: str) -> None:
    net = DownsizeNet(
        neighbourhood=neighbourhood, coefficients=coefficients, conv_layers=2, channels=3,
        init="random",
    ).double()  # fmt: skip
    images = torch.rand(1, 3, 7, 9, dtype=torch.float64, requires_grad=True)
    params = [p for p in net.parameters()]

    def run(x: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(
            net,
            dict(zip([n for n, _ in net.named_parameters()], weights, strict=True)),
            (x,),
            {"size": (4, 5)},
        )

    assert torch.autograd.gradcheck(run, (images, *[p.detach().requires_grad_() for p in params]))


def test_no_grad_channels_last_and_autocast() -> None:
    net = DownsizeNet()
    images = torch.rand(2, 3, 40, 48)
    reference = net(images, size=(21, 25)).detach()
    with torch.no_grad():
        out = net(images.to(memory_format=torch.channels_last), size=(21, 25))
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cpu", dtype=dtype):
            low = net(images, size=(21, 25))
        assert low.dtype == torch.float32 and torch.isfinite(low).all()
        torch.testing.assert_close(low, reference, atol=3e-2, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    net = DownsizeNet()
    images = torch.rand(2, 3, 40, 48)
    expected = net(images, scale_factor=0.4).detach()
    gpu = net.cuda()
    torch.testing.assert_close(
        gpu(images.cuda(), scale_factor=0.4).cpu(), expected, atol=1e-5, rtol=0
    )


def test_geometry_is_computed_once_per_shape() -> None:
    net = DownsizeNet()
    images = torch.rand(1, 3, 30, 30)
    net(images, size=(10, 10))
    cached = next(iter(net._geometry_cache.values()))
    net(images, size=(10, 10))
    assert len(net._geometry_cache) == 1 and next(iter(net._geometry_cache.values())) is cached
    net(images, size=(11, 10))
    assert len(net._geometry_cache) == 2


class _FixedSize(torch.nn.Module):
    def __init__(self, net: DownsizeNet, size: tuple[int, int]) -> None:
        super().__init__()
        self.net, self.size = net, size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images, size=self.size)


def test_jit_trace_matches_eager() -> None:
    module = _FixedSize(DownsizeNet(init="random"), (16, 17)).eval()
    images = torch.rand(2, 3, 30, 34)
    with torch.no_grad():
        traced = torch.jit.trace(module, images)
        torch.testing.assert_close(traced(images * 0.5), module(images * 0.5))


def test_onnx_export_matches_pytorch(tmp_path: Path) -> None:
    module = _FixedSize(DownsizeNet(neighbourhood="antialias", init="random"), (9, 11)).eval()
    images = torch.rand(1, 3, 30, 34)
    path = tmp_path / "resizer.onnx"
    torch.onnx.export(module, (images,), str(path), input_names=["images"], dynamo=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(actual), module(images), atol=1e-4, rtol=0)


@pytest.mark.parametrize("layers", [0, 1, 2, 3, 4, 5])
def test_conv_layer_ablation(layers: int) -> None:
    net = DownsizeNet(conv_layers=layers)
    assert len([m for m in net.texture if isinstance(m, torch.nn.Conv2d)]) == layers
    assert net(torch.rand(1, 3, 20, 20), size=(10, 10)).shape == (1, 3, 10, 10)


def test_texture_only_starts_as_neighbour_average() -> None:
    net = DownsizeNet(use_distance=False)
    assert net.config.distance_prior is False
    images = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        out = net(images, size=(10, 10))
    # Scale 2: taps are rows/cols 2i, 2i+1, so the plain average is 2x2 average pooling.
    torch.testing.assert_close(out, F.avg_pool2d(images, 2), atol=1e-3, rtol=0)


def test_config_round_trips_through_json() -> None:
    config = DownsizeNetConfig(neighbourhood="bicubic", conv_layers=2, coefficients="softmax")
    again = DownsizeNetConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    net = DownsizeNet(config, channels=8)
    assert net.config.channels == 8 and net.config.neighbourhood == "bicubic"


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"neighbourhood": "lanczos"}, ValueError, "neighbourhood"),
        ({"coefficients": "relu"}, ValueError, "coefficients"),
        ({"conv_layers": 6}, ValueError, "conv_layers"),
        ({"conv_layers": 2.0}, TypeError, "conv_layers"),
        ({"channels": 0}, ValueError, "channels"),
        ({"use_distance": "yes"}, TypeError, "use_distance"),
        ({"conv_layers": 0, "use_distance": False}, ValueError, "conv_layers=0"),
        ({"coefficients": "linear", "distance_prior": True}, ValueError, "distance_prior"),
        ({"init": "kaiming"}, ValueError, "init"),
    ],
)
def test_invalid_config(kwargs: dict, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        DownsizeNetConfig(**kwargs)


def test_unknown_config_key() -> None:
    with pytest.raises(ValueError, match="unknown DownsizeNet config key"):
        DownsizeNetConfig.from_dict({"neighbourhod": "bilinear"})


@pytest.mark.parametrize(
    ("images", "kwargs", "error", "words"),
    [
        (torch.rand(3, 10, 10), {"size": (5, 5)}, ValueError, "4-D"),
        (torch.randint(0, 255, (1, 3, 10, 10)), {"size": (5, 5)}, TypeError, "floating"),
        (torch.rand(1, 3, 10, 10), {"size": (0, 5)}, ValueError, "size"),
        (torch.rand(1, 3, 10, 10), {"size": (5, 5, 5)}, ValueError, "pair"),
        (torch.rand(1, 3, 10, 10), {"size": (5.5, 5)}, ValueError, "size"),
        (torch.rand(1, 3, 10, 10), {}, ValueError, "exactly one"),
        (torch.rand(1, 3, 10, 10), {"size": 5, "scale_factor": 0.5}, ValueError, "exactly one"),
        (torch.rand(1, 3, 10, 10), {"scale_factor": -1.0}, ValueError, "scale_factor"),
        (torch.rand(1, 3, 10, 10), {"scale_factor": 0.01}, ValueError, "at least one pixel"),
        (torch.rand(1, 4, 10, 10), {"size": 5}, ValueError, "in_channels"),
        ([[1.0]], {"size": 5}, TypeError, "torch.Tensor"),
    ],
)
def test_bad_input(images: Any, kwargs: dict, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        DownsizeNet()(images, **kwargs)


@pytest.mark.parametrize("layers", [1, 3, 5])
@pytest.mark.parametrize("kwargs", [{"scale_factor": 0.3}, {"size": (97, 40)}, {"size": (150, 61)}])
def test_banded_inference_at_anchors_is_exact(
    monkeypatch: pytest.MonkeyPatch, layers: int, kwargs: dict
) -> None:
    """Without autograd large inputs run the texture branch in bands, its last conv only at the
    anchors: the same output as the reference (whole maps, then a gather), whatever the bands."""

    net = DownsizeNet(init="random", conv_layers=layers).eval()
    _assert_inference_paths_match_the_reference(monkeypatch, net, torch.rand(2, 3, 120, 50), kwargs)


def _assert_inference_paths_match_the_reference(
    monkeypatch: pytest.MonkeyPatch,
    net: DownsizeNet,
    images: torch.Tensor,
    kwargs: dict,
    whole_call: Any = None,
) -> None:
    """Whole images, bands of 7 rows and one image per call all give the reference's output
    (whole maps, then a gather); ``whole_call`` runs after the first, whole call."""
    import downsizenet_hub.resizing.texture as resizer_module

    with torch.no_grad():
        whole = net(images, **kwargs)
        if whole_call is not None:
            whole_call()
        monkeypatch.setattr(resizer_module, "INFERENCE_BANDING_MIN_PIXELS", 7 * images.shape[-1])
        monkeypatch.setattr(resizer_module, "INFERENCE_BAND_PIXELS", 7 * images.shape[-1])
        banded = net(images, **kwargs)
        monkeypatch.setattr(resizer_module, "INFERENCE_CALL_PIXELS", 1)  # one image per call
        per_image = net(images, **kwargs)
        monkeypatch.setattr(net, "_pooled_texture", net._pooled_texture_reference)
        reference = net(images, **kwargs)
    torch.testing.assert_close(whole, reference, atol=1e-6, rtol=0)
    torch.testing.assert_close(banded, reference, atol=1e-6, rtol=0)
    torch.testing.assert_close(per_image, reference, atol=1e-6, rtol=0)


@pytest.mark.usefixtures("eager_paths")
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("kwargs", [{"size": (60, 30)}, {"scale_factor": 0.59}])
def test_inference_at_anchor_rows_is_exact(
    monkeypatch: pytest.MonkeyPatch, layers: int, batch: int, kwargs: dict
) -> None:
    """Where the anchors skip input rows but their grid of blocks would not pay, inference runs
    the last conv at the anchor rows only (whole images, bands, one image per call): the
    reference's output, with the zero padding of the rows above the image."""
    import downsizenet_hub.resizing.anchors as anchors
    import downsizenet_hub.resizing.texture as resizer_module

    gathered: list[int] = []

    def counting_gather_rows(*args: Any, **kw: Any) -> torch.Tensor:
        rows = anchors.gather_rows(*args, **kw)
        gathered.append(rows.shape[0])
        return rows

    monkeypatch.setattr(resizer_module, "gather_rows", counting_gather_rows)
    net = DownsizeNet(init="random", conv_layers=layers).eval()
    images = torch.rand(batch, 3, 120, 50)

    def one_call_of_the_whole_batch() -> None:
        assert gathered == [batch]

    _assert_inference_paths_match_the_reference(
        monkeypatch, net, images, kwargs, one_call_of_the_whole_batch
    )
    assert len(gathered) > 2 + batch  # the bands ran at the anchor rows too


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("kwargs", [{"scale_factor": 0.35}, {"size": (50, 20)}])
def test_inference_with_the_compiled_anchor_kernel_is_exact(
    monkeypatch: pytest.MonkeyPatch, layers: int, kwargs: dict
) -> None:
    """Where the compiled kernel of resizing/native.py is available, inference computes the
    last conv with it at the anchors (sparse anchors, as 513->179, and anchors on most rows, as
    300->160): whole images, bands and one image per call give the reference's output. Training
    keeps the eager path."""
    import downsizenet_hub.resizing.texture as resizer_module
    from downsizenet_hub.resizing import native

    if native.kernels() is None:
        pytest.skip("no C compiler here to build the native kernels")
    calls: list[int] = []
    kernel = native.conv3x3_relu_at

    def counting(*args: Any, **kw: Any) -> torch.Tensor:
        calls.append(args[0].shape[0])
        return kernel(*args, **kw)

    monkeypatch.setattr(resizer_module.native, "conv3x3_relu_at", counting)
    net = DownsizeNet(init="random", conv_layers=layers)
    images = torch.rand(3, 3, 120, 50)
    net(images, **kwargs)
    assert calls == []  # autograd on: the eager path
    net.eval()
    _assert_inference_paths_match_the_reference(monkeypatch, net, images, kwargs)
    assert calls[0] == 3 and len(calls) > 2 + 3  # whole batch, then bands, then single images


@pytest.mark.parametrize("neighbourhood", ["bilinear", "bicubic", "antialias"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_inference_with_the_native_kernels_equals_the_eager_path(
    monkeypatch: pytest.MonkeyPatch, neighbourhood: str, channels_last: bool
) -> None:
    """Both compiled kernels (the anchor conv and the mix) against the eager path, in every
    neighbourhood, on NCHW and channels-last images; float64 keeps the eager path."""
    from downsizenet_hub.resizing import native

    if native.kernels() is None:
        pytest.skip("no C compiler here to build the native kernels")
    net = DownsizeNet(init="random", neighbourhood=neighbourhood).eval()
    images = torch.rand(2, 3, 45, 38)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    mixed: list[int] = []
    mix_taps = native.mix_taps
    monkeypatch.setattr(native, "mix_taps", lambda *a, **k: mixed.append(1) or mix_taps(*a, **k))
    with torch.no_grad():
        compiled = net(images, scale_factor=0.4)
        assert mixed == [1]
        monkeypatch.setattr(native, "kernels", lambda: None)
        eager = net(images, scale_factor=0.4)
    torch.testing.assert_close(compiled, eager, atol=1e-6, rtol=0)


@pytest.mark.parametrize("neighbourhood", ["bilinear", "bicubic", "antialias"])
def test_training_path_at_anchors_matches_the_reference_and_its_gradients(
    monkeypatch: pytest.MonkeyPatch, neighbourhood: str
) -> None:
    """With autograd the last conv also runs only at the anchors: same output and gradients."""
    torch.manual_seed(0)
    net = DownsizeNet(init="random", neighbourhood=neighbourhood)
    images = torch.rand(2, 3, 41, 37, dtype=torch.float64)
    net.double()

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        net.zero_grad()
        out = net(images, scale_factor=0.45)
        (out * torch.linspace(0, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        return out.detach(), [p.grad.clone() for p in net.parameters() if p.grad is not None]

    fast, fast_grads = run()
    monkeypatch.setattr(net, "_pooled_texture", net._pooled_texture_reference)
    reference, reference_grads = run()
    torch.testing.assert_close(fast, reference, atol=1e-12, rtol=0)
    for got, expected in zip(fast_grads, reference_grads, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-9)


@pytest.mark.usefixtures("eager_paths")
def test_inference_fuses_conv_and_relu_on_the_cpu_and_matches_the_plain_layers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import downsizenet_hub.resizing.texture as resizer_module

    if not resizer_module._fused_conv_relu_available():
        pytest.skip("this PyTorch build has no fused oneDNN conv + relu")
    calls = []
    fused = resizer_module._conv3x3_relu

    def counting(*args: torch.Tensor, **kwargs: int) -> torch.Tensor:
        calls.append(1)
        return fused(*args, **kwargs)

    monkeypatch.setattr(resizer_module, "_conv3x3_relu", counting)
    net = DownsizeNet(init="random", conv_layers=3)
    images = torch.rand(2, 3, 61, 47)
    plain = net(images, scale_factor=0.4).detach()  # autograd on: the plain layers
    assert calls == []
    with torch.no_grad():
        torch.testing.assert_close(net(images, scale_factor=0.4), plain, atol=1e-5, rtol=0)
    assert len(calls) == 3  # two layers, then the last at the anchors
    monkeypatch.setattr(resizer_module, "_fused_conv_relu_available", lambda: False)
    with torch.no_grad():
        torch.testing.assert_close(net(images, scale_factor=0.4), plain, atol=1e-6, rtol=0)
    assert len(calls) == 3  # the fallback ran the plain layers
