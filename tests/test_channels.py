"""Resizing grayscale, RGBA and other channel layouts with one resizer."""

from __future__ import annotations

import doctest

import pytest
import torch
import torch.nn.functional as F

from downsizenet_hub import DownsizeNet
from downsizenet_hub.registry import create_resizer
from downsizenet_hub.tools import channels
from downsizenet_hub.tools.channels import mix_neighbours, resize_any_channels


def _textured(neighbourhood: str = "bilinear", in_channels: int = 3) -> DownsizeNet:
    """A DownsizeNet whose coefficients clearly depend on the texture (not ~bilinear)."""
    net = DownsizeNet(neighbourhood=neighbourhood, in_channels=in_channels)
    with torch.no_grad():
        net.head.weight.normal_(0.0, 0.5)
    return net.eval()


@pytest.mark.parametrize("neighbourhood", ["bilinear", "bicubic", "antialias"])
@pytest.mark.parametrize("target", [{"size": (7, 9)}, {"scale_factor": 0.3}, {"size": (30, 25)}])
def test_mix_neighbours_reproduces_the_resizer(neighbourhood: str, target: dict) -> None:
    net = _textured(neighbourhood)
    images = torch.rand(2, 3, 23, 19)
    with torch.no_grad():
        coefficients = net.coefficient_maps(images, **target)
        expected = net(images, **target)
    mixed = mix_neighbours(images, coefficients, neighbourhood, **target)
    torch.testing.assert_close(mixed, expected, atol=1e-6, rtol=0)


def test_gray_through_rgb_resizer_equals_the_gray_picture_as_rgb() -> None:
    net = _textured()
    gray = torch.rand(2, 1, 30, 26)
    with torch.no_grad():
        out = resize_any_channels(net, gray, size=(11, 13))
        as_rgb = net(gray.expand(-1, 3, -1, -1), size=(11, 13))
    assert out.shape == (2, 1, 11, 13)
    torch.testing.assert_close(out, as_rgb[:, :1], atol=1e-6, rtol=0)
    # The three channels of the RGB result are identical: nothing is lost by keeping one.
    torch.testing.assert_close(as_rgb[:, 0], as_rgb[:, 2], atol=1e-6, rtol=0)


def test_rgb_through_gray_resizer_uses_luma_as_guide() -> None:
    net = _textured(in_channels=1)
    rgb = torch.rand(1, 3, 20, 20)
    luma = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]).unsqueeze(1)
    with torch.no_grad():
        out = resize_any_channels(net, rgb, scale_factor=0.5)
        coefficients = net.coefficient_maps(luma, scale_factor=0.5)
    torch.testing.assert_close(out, mix_neighbours(rgb, coefficients, "bilinear", scale_factor=0.5))


def test_opaque_alpha_changes_nothing() -> None:
    net = _textured()
    rgb = torch.rand(1, 3, 24, 24)
    rgba = torch.cat([rgb, torch.ones(1, 1, 24, 24)], dim=1)
    with torch.no_grad():
        out = resize_any_channels(net, rgba, size=(10, 10), alpha=True)
        expected = net(rgb, size=(10, 10))
    torch.testing.assert_close(out[:, :3], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(out[:, 3:], torch.ones(1, 1, 10, 10), atol=1e-6, rtol=0)


def test_transparent_pixels_do_not_bleed_their_colour() -> None:
    # Left half: opaque red; right half: fully transparent, with a garbage green colour.
    rgba = torch.zeros(1, 4, 8, 8)
    rgba[:, 0, :, :4] = 1.0
    rgba[:, 3, :, :4] = 1.0
    rgba[:, 1, :, 4:] = 1.0
    for resizer in (create_resizer("bilinear"), _textured()):
        with torch.no_grad():
            out = resize_any_channels(resizer, rgba, size=(4, 4), alpha=True)
        visible = out[:, 3] > 0
        assert visible.any()
        assert torch.all(out[:, 1][visible] == 0)  # no green where anything is visible
        torch.testing.assert_close(out[:, 0][visible], torch.ones_like(out[:, 0][visible]))


def test_fixed_resizer_with_alpha_is_premultiplied_interpolation() -> None:
    rgba = torch.rand(2, 4, 16, 12)
    out = resize_any_channels(create_resizer("area"), rgba, size=(8, 6), alpha=True)
    premultiplied = torch.cat([rgba[:, :3] * rgba[:, 3:], rgba[:, 3:]], dim=1)
    pooled = F.interpolate(premultiplied, size=(8, 6), mode="area")
    torch.testing.assert_close(out[:, 3:], pooled[:, 3:])
    torch.testing.assert_close(out[:, :3] * pooled[:, 3:], pooled[:, :3], atol=1e-6, rtol=0)


def test_bad_channel_counts_are_one_sentence_errors() -> None:
    with pytest.raises(ValueError, match="colour channel besides alpha"):
        resize_any_channels(create_resizer("bilinear"), torch.rand(1, 1, 8, 8), size=4, alpha=True)
    with pytest.raises(ValueError, match="cannot guide a resizer that reads 3 channels"):
        resize_any_channels(_textured(), torch.rand(1, 2, 8, 8), size=4)
    with pytest.raises(ValueError, match="exactly one of size"):
        resize_any_channels(_textured(), torch.rand(1, 3, 8, 8))


def test_mix_neighbours_checks_the_coefficient_shape() -> None:
    with pytest.raises(ValueError, match="expected"):
        mix_neighbours(torch.rand(1, 3, 8, 8), torch.rand(1, 4, 4, 2, 2), "bilinear", size=(3, 3))


def test_docstring_examples_run() -> None:
    result = doctest.testmod(channels)
    assert result.attempted > 0 and result.failed == 0
