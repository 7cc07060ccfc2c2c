"""The functional form of the resizers (``resizing/functional.py``) and the uncached geometry the
ONNX exporter relies on."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from downsizenet_hub.resizing import DownsizeNet, FixedResizer, downsize, interpolate
from downsizenet_hub.resizing.geometry import build_geometry
from downsizenet_hub.resizing.target import resize_target


@pytest.mark.parametrize("target", [{"size": (13, 9)}, {"scale_factor": 0.35}])
def test_downsize_is_the_module_and_takes_a_geometry_built_elsewhere(target: dict) -> None:
    torch.manual_seed(0)
    net = DownsizeNet(init="random").eval()
    images = torch.rand(2, 3, 37, 29)
    with torch.no_grad():
        expected = net(images, **target)
        assert torch.equal(downsize(images, net, **target), expected)
        checked = resize_target(**target)
        geometry = build_geometry(
            net.config, (37, 29), checked.output_size((37, 29)), checked.scales, torch.device("cpu")
        )
        assert torch.equal(downsize(images, net, **target, geometry=geometry), expected)


def test_without_the_cache_every_call_builds_its_geometry() -> None:
    net = DownsizeNet().eval()
    images = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        cached = net(images, scale_factor=0.5)
        assert len(net._geometry_cache) == 1
        net._geometry_cache.clear()
        net.cache_geometry = False
        assert torch.equal(net(images, scale_factor=0.5), cached)
    assert len(net._geometry_cache) == 0


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "area", "antialias", "nearest"])
def test_interpolate_is_f_interpolate_with_the_same_geometry(mode: str) -> None:
    images = torch.rand(2, 3, 31, 17)
    torch_mode = "bilinear" if mode == "antialias" else mode
    corners = {} if mode in ("area", "nearest") else {"align_corners": False}
    extra = {"antialias": True} if mode == "antialias" else {}
    for target in ({"size": (11, 7)}, {"scale_factor": 0.4}):
        expected = F.interpolate(images, mode=torch_mode, **corners, **extra, **target)
        assert torch.equal(interpolate(images, mode, **target), expected)
        assert torch.equal(FixedResizer(mode)(images, **target), expected)  # type: ignore[arg-type]


def test_interpolate_refuses_an_unknown_mode_in_one_sentence() -> None:
    with pytest.raises(ValueError, match=r"mode must be one of \['bilinear'"):
        interpolate(torch.rand(1, 1, 4, 4), "lanczos", size=2)
