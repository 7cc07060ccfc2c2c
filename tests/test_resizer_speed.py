"""The resizer's inference shortcuts (issue 28): the cheap log-sigmoid, the in-place
normalisation, the workspace kept from call to call, and a compiled graph without breaks. Each
is held to the plain path it replaces."""

from __future__ import annotations

import copy
import pickle
import threading

import pytest
import torch
import torch.nn.functional as F

from downsizenet_hub.resizing import DownsizeNet
from downsizenet_hub.resizing.functional import LOG_SIGMOID_LINEAR_BELOW, log_sigmoid, normalise
from downsizenet_hub.resizing.limits import MEMORY_LIMIT_ENV, MemoryLimitError

EXTREME_LOGITS = [-1e30, -1e4, -200.0, -104.0, -90.0, -80.0, -79.9, -30.0, -1.0, 0.0, 1.0]
EXTREME_LOGITS += [30.0, 1e4, 1e30]


def _trained_looking(net: DownsizeNet, seed: int = 0) -> DownsizeNet:
    """Coefficients away from the classical start, so that comparisons see the learned part."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    return net.eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_sigmoid_is_finite_and_matches_logsigmoid_at_extreme_logits(dtype: torch.dtype) -> None:
    logits = torch.tensor(EXTREME_LOGITS, dtype=dtype)
    with torch.no_grad():
        cheap = log_sigmoid(logits)
    assert torch.isfinite(cheap).all()
    torch.testing.assert_close(cheap, F.logsigmoid(logits), rtol=1e-6, atol=1e-6)
    below = logits <= LOG_SIGMOID_LINEAR_BELOW
    assert torch.equal(cheap[below], logits[below])  # z itself, exactly, where sigmoid underflows


def test_log_sigmoid_with_autograd_is_logsigmoid() -> None:
    logits = torch.tensor(EXTREME_LOGITS, requires_grad=True)
    out = log_sigmoid(logits)
    assert torch.equal(out, F.logsigmoid(logits))
    (grad,) = torch.autograd.grad(out.sum(), logits)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("neighbourhood", ["bilinear", "bicubic", "antialias"])
@pytest.mark.parametrize("bias", [-1e4, -150.0, 1e4])
def test_no_logit_underflows_the_normalisation(neighbourhood: str, bias: float) -> None:
    # Every logit equal and extreme: the coefficients are the classical prior, finite and convex.
    net = DownsizeNet(neighbourhood=neighbourhood, conv_layers=0, init="random").eval()
    reference = DownsizeNet(neighbourhood=neighbourhood, conv_layers=0).eval()
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.fill_(bias)  # type: ignore[union-attr]
        images = torch.rand(2, 3, 17, 23)
        coefficients = net.coefficient_maps(images, scale_factor=0.4)
        expected = reference.coefficient_maps(images, scale_factor=0.4)
    assert torch.isfinite(coefficients).all()
    torch.testing.assert_close(coefficients.sum(dim=(3, 4)), torch.ones(2, 6, 9))
    # The prior is added to the logit in log space: float32 keeps it to ulp(|bias|) (1e-3 at 1e4).
    torch.testing.assert_close(coefficients, expected, rtol=0, atol=1e-3)


def test_one_extreme_logit_takes_no_mass_and_the_others_stay_normalised() -> None:
    net = DownsizeNet(conv_layers=0, init="random").eval()
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor([-1e4, 0.0, 0.0, 0.0]))  # type: ignore[union-attr]
        coefficients = net.coefficient_maps(torch.rand(1, 3, 16, 16), scale_factor=0.5)
    assert torch.isfinite(coefficients).all()
    assert coefficients[..., 0, 0].max() == 0
    torch.testing.assert_close(coefficients.sum(dim=(3, 4)), torch.ones(1, 8, 8))


@pytest.mark.parametrize("coefficients", ["sigmoid", "softmax"])
@pytest.mark.parametrize("neighbourhood", ["bilinear", "antialias"])
def test_in_place_normalisation_is_the_plain_one(coefficients: str, neighbourhood: str) -> None:
    net = _trained_looking(DownsizeNet(neighbourhood=neighbourhood, coefficients=coefficients))
    images = torch.rand(2, 3, 30, 26)
    with torch.no_grad():
        geometry = net.prepare(images, size=(11, 9))
        logits = torch.randn(2, 11, 9, net.config.logit_channels) * 50
        plain = normalise(logits, geometry, net.config.coefficients)
        in_place = normalise(logits.clone(), geometry, net.config.coefficients, in_place=True)
    if coefficients == "softmax":
        assert torch.equal(in_place, plain)  # the same kernels
    else:  # normalised directly: float rounding
        torch.testing.assert_close(in_place, plain, rtol=0, atol=1e-6)


@pytest.mark.parametrize("neighbourhood", ["bilinear", "bicubic", "antialias"])
def test_sigmoid_coefficients_normalise_directly_unless_a_pixel_underflows(
    monkeypatch: pytest.MonkeyPatch, neighbourhood: str
) -> None:
    """Without autograd, ``prior * sigmoid(z)`` over its sum (equal to float rounding); where
    one pixel's every logit underflows that sum, the whole batch takes the log-space form."""
    import downsizenet_hub.resizing.functional as functional

    net = _trained_looking(DownsizeNet(neighbourhood=neighbourhood))
    images = torch.rand(2, 3, 30, 26)
    results: list[bool] = []
    direct = functional._sigmoid_coefficients

    def recording(*args: object) -> torch.Tensor | None:
        result = direct(*args)  # type: ignore[arg-type]
        results.append(result is not None)
        return result

    monkeypatch.setattr(functional, "_sigmoid_coefficients", recording)
    with torch.no_grad():
        geometry = net.prepare(images, size=(11, 9))
        logits = torch.randn(2, 11, 9, net.config.logit_channels) * 10
        for underflowing in (None, -100.0, -1e4):
            if underflowing is not None:
                logits[1, 3, 4] = underflowing  # every tap of one pixel
            plain = normalise(logits, geometry, "sigmoid")
            fast = normalise(logits.clone(), geometry, "sigmoid", in_place=True)
            torch.testing.assert_close(fast, plain, rtol=0, atol=1e-6)
            assert torch.isfinite(fast).all()
    assert results == [True, False, False]


@pytest.mark.usefixtures("eager_paths")
@pytest.mark.parametrize("neighbourhood", ["bilinear", "bicubic", "antialias"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels_last", [True, False])
def test_inference_mixes_as_weighted_bags_equal_to_the_gather_and_product(
    monkeypatch: pytest.MonkeyPatch, neighbourhood: str, dtype: torch.dtype, channels_last: bool
) -> None:
    import downsizenet_hub.resizing.functional as functional

    net = _trained_looking(DownsizeNet(neighbourhood=neighbourhood)).to(dtype)
    images = torch.rand(3, 3, 41, 37, dtype=dtype)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    calls: list[bool] = []
    bags_apply = functional._bags_apply
    monkeypatch.setattr(
        functional, "_bags_apply", lambda *a: calls.append(bags_apply(*a)) or calls[-1]
    )
    with torch.no_grad():
        bags = net(images, size=(17, 29))
        monkeypatch.setattr(functional, "_bags_apply", lambda *a: False)
        gathered = net(images, size=(17, 29))
    assert calls == [True]
    assert bags.dtype == dtype and bags.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(bags, gathered, rtol=0, atol=1e-6)


def test_half_precision_and_autograd_mix_by_gather_and_product() -> None:
    import downsizenet_hub.resizing.functional as functional

    pixels = torch.rand(2, 10, 3)
    coefficients = torch.rand(2, 5, 1, 2, 2)
    with torch.no_grad():
        assert functional._bags_apply(pixels, coefficients)
        assert not functional._bags_apply(pixels.half(), coefficients)
        assert not functional._bags_apply(pixels, coefficients.clone().requires_grad_())
    assert not functional._bags_apply(pixels, coefficients)  # autograd on


# Shapes that take each inference path: whole maps (300->160 style), the last conv at the anchors
# with several texture calls per batch, and bands (large inputs).
WORKSPACE_CASES = [((8, 3, 60, 60), {"size": (32, 32)}), ((3, 3, 513, 513), {"size": (179, 179)})]
WORKSPACE_CASES += [((1, 3, 800, 700), {"scale_factor": 0.3})]


@pytest.mark.parametrize(("shape", "kwargs"), WORKSPACE_CASES)
def test_workspace_keeps_temporaries_and_changes_no_number(shape: tuple, kwargs: dict) -> None:
    net = _trained_looking(DownsizeNet(conv_layers=2))
    fresh = copy.deepcopy(net)
    fresh.reuse_temporaries = False
    images = torch.rand(shape)
    with torch.no_grad():
        expected = fresh(images, **kwargs)
        first = net(images, **kwargs)
        kept = net._workspace.nbytes
        pointers = _buffer_pointers(net)
        second = net(images, **kwargs)
    assert kept > 0 and fresh._workspace.nbytes == 0
    assert _buffer_pointers(net) == pointers  # the second call wrote into the first's memory
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert second.data_ptr() != first.data_ptr()  # outputs are never workspace memory
    assert second.data_ptr() not in pointers
    net.release_workspace()
    assert net._workspace.nbytes == 0


def _buffer_pointers(net: DownsizeNet) -> set[int]:
    return {
        tensor.data_ptr()
        for roles in net._workspace._threads.values()
        for kept in roles.values()
        for tensor in kept.values()
    }


def test_training_and_grad_mode_keep_nothing() -> None:
    net = DownsizeNet()
    images = torch.rand(2, 3, 40, 40, requires_grad=True)
    net(images, scale_factor=0.5).sum().backward()
    assert net._workspace.nbytes == 0 and images.grad is not None


def test_inference_mode_buffers_serve_later_no_grad_calls() -> None:
    net = _trained_looking(DownsizeNet())
    images = torch.rand(2, 3, 40, 40)
    with torch.inference_mode():
        first = net(images, size=(17, 19))
    with torch.no_grad():  # writes into buffers made under inference_mode: they must be plain
        second = net(images, size=(17, 19))
    assert torch.equal(first, second)


@pytest.mark.usefixtures("eager_paths")
def test_each_shape_keeps_its_buffers_and_old_shapes_are_dropped() -> None:
    net = DownsizeNet().eval()
    with torch.no_grad():
        for side in (30, 40, 50, 60):
            net(torch.rand(1, 3, side, side), size=(12, 12))
    grids = [kept for roles in net._workspace._threads.values() for kept in [roles["grid"]]]
    assert len(grids) == 1 and len(grids[0]) == 1  # one output size: one grid of blocks
    with torch.no_grad():
        for size in (10, 11, 12, 13):
            net(torch.rand(1, 3, 30, 30), size=(size, size))
    assert len(grids[0]) == 2  # SHAPES_PER_ROLE most recent


def test_threads_get_their_own_buffers() -> None:
    net = _trained_looking(DownsizeNet())
    images = [torch.rand(4, 3, 50, 50) for _ in range(4)]
    with torch.no_grad():
        expected = [net(x, size=(21, 21)) for x in images]
    results: dict[int, list[torch.Tensor]] = {}

    def work(index: int) -> None:
        with torch.no_grad():
            results[index] = [net(x, size=(21, 21)) for x in images * 3]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for outputs in results.values():
        assert all(torch.equal(a, b) for a, b in zip(outputs, expected * 3, strict=True))
    assert len(net._workspace._threads) == 4  # the main thread's and one per worker


def test_copies_moves_and_pickles_start_with_an_empty_workspace() -> None:
    net = DownsizeNet().eval()
    with torch.no_grad():
        net(torch.rand(1, 3, 30, 30), size=(12, 12))
    assert net._workspace.nbytes > 0
    assert copy.deepcopy(net)._workspace.nbytes == 0
    assert pickle.loads(pickle.dumps(net))._workspace.nbytes == 0
    net.double()
    assert net._workspace.nbytes == 0


@pytest.mark.slow
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_compiled_graph_is_whole_and_equals_eager(grad: bool) -> None:
    net = _trained_looking(DownsizeNet())
    images = torch.rand(1, 3, 23, 31)
    torch._dynamo.reset()
    with torch.set_grad_enabled(grad):
        explanation = torch._dynamo.explain(net)(images, scale_factor=0.5)
        assert explanation.graph_break_count == 0, explanation.break_reasons
        assert explanation.graph_count == 1
        compiled = copy.deepcopy(net)
        compiled.compile()
        torch.testing.assert_close(
            compiled(images, scale_factor=0.5), net(images, scale_factor=0.5), rtol=1e-5, atol=1e-5
        )


@pytest.mark.slow
def test_compiled_resizer_keeps_the_memory_check(monkeypatch: pytest.MonkeyPatch) -> None:
    net = DownsizeNet().eval()
    net.compile()
    images = torch.rand(1, 3, 23, 31)
    with torch.no_grad():
        assert net(images, scale_factor=0.5).shape == (1, 3, 11, 15)
        monkeypatch.setenv(MEMORY_LIMIT_ENV, "1e-6")  # about 1 KiB
        with pytest.raises(MemoryLimitError, match=MEMORY_LIMIT_ENV):
            net(images, scale_factor=0.5)
        monkeypatch.delenv(MEMORY_LIMIT_ENV)
        assert net(images, scale_factor=0.5).shape == (1, 3, 11, 15)
