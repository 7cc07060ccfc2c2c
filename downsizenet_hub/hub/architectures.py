"""The architectures a published resizer can have, declared as data: :data:`ARCHITECTURES`.

``config.json`` names its architecture (``"architecture": "talebi"``) and holds that
architecture's configuration under the same key (``"talebi": {...}``); a DownsizeNet's
config.json, written before there were other architectures, has no ``"architecture"`` key and
keeps that form. Each entry says which torch-free config class parses that object (so listing
the hub stays torch-free), which module class it builds (imported only to load), what the card
and ``hub list`` call it, and whether its output is an image (a convex mix of input pixels).

A plugin's resizer (see :mod:`downsizenet_hub.plugins`) is stored the same way when its plugin
gives a config class: ``"architecture": "<its name>"``, its configuration under that name, and
which plugin (package and version) wrote it. Its entry is made when it is first needed
(:func:`architecture`, :func:`architecture_of`) and is built by the plugin's builder.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from downsizenet_hub import plugins
from downsizenet_hub.resizing.baseline_config import StridedConfig, TalebiConfig
from downsizenet_hub.resizing.config import DownsizeNetConfig

if TYPE_CHECKING:
    from torch import nn

#: The configuration of any storable architecture.
ResizerConfig = DownsizeNetConfig | TalebiConfig | StridedConfig
#: The architecture of a config.json without an ``"architecture"`` key.
DEFAULT_ARCHITECTURE = "downsizenet"


@dataclass(frozen=True)
class Architecture:
    """One storable architecture: its name in config.json and how to read and build it."""

    # The value of config.json's "architecture" and the key of its configuration.
    name: str
    # What cards and `hub list` call it, e.g. "Talebi-Milanfar resizer".
    title: str
    # The torch-free configuration dataclass (with to_dict / from_dict).
    config_type: type[Any]
    # "module:Class" of the resizer module; the class is built as Class(config).
    module: str
    # True when every output pixel is a convex mix of input pixels (the output is an image).
    convex: bool
    # The plugin that registers it (None: built in); it builds the module instead of ``module``.
    plugin: plugins.LoadedPlugin | None = None

    def parse(self, data: object) -> ResizerConfig:
        """The configuration from config.json's object (TypeError/ValueError in one sentence)."""
        if not isinstance(data, dict):
            raise TypeError(f"the {self.name!r} object must be a JSON object, got {data!r}.")
        if self.plugin is not None:
            return self.plugin.parse_config(data)
        return self.config_type.from_dict(data)

    def module_class(self) -> Callable[[Any], nn.Module]:
        """The module class, or a plugin's builder taking the config object (imports torch)."""
        plugin = self.plugin
        if plugin is not None:
            return lambda config: plugin.create(**plugin.config_dict(config))
        path, _, name = self.module.partition(":")
        return getattr(importlib.import_module(path), name)


ARCHITECTURES: dict[str, Architecture] = {
    entry.name: entry
    for entry in (
        Architecture(
            "downsizenet",
            "DownsizeNet resizer",
            DownsizeNetConfig,
            "downsizenet_hub.resizing.downsizenet:DownsizeNet",
            convex=True,
        ),
        Architecture(
            "talebi",
            "Talebi-Milanfar resizer",
            TalebiConfig,
            "downsizenet_hub.resizing.talebi:TalebiResizer",
            convex=False,
        ),
        Architecture(
            "strided",
            "strided-convolution resizer",
            StridedConfig,
            "downsizenet_hub.resizing.strided:StridedResizer",
            convex=False,
        ),
    )
}


def architecture(name: str, where: object) -> Architecture:
    """The architecture ``name``, built in or a plugin's; an unknown one is one ValueError
    sentence naming ``where`` (a broken plugin: its PluginError)."""
    found = ARCHITECTURES.get(name) if isinstance(name, str) else None
    if found is not None:
        return found
    plugin = plugins.get(name) if isinstance(name, str) and name else None
    if plugin is not None and plugin.plugin.config_class is not None:
        return plugin_architecture(plugin)
    if plugin is not None:
        raise plugin.error(
            f"{where} holds a {name!r} resizer, but the plugin gives no config_class to load it."
        )
    raise ValueError(
        f"{where} holds a resizer of unknown architecture {name!r}; this downsizenet-hub "
        f"loads {', '.join(ARCHITECTURES)} and the installed plugins' resizers (install the "
        "plugin that provides it, or name its module with --plugin; a newer version may know it)."
    )


def architecture_of(config: object) -> Architecture:
    """The architecture whose configuration ``config`` is (a module's ``.config``)."""
    for entry in ARCHITECTURES.values():
        if type(config) is entry.config_type:
            return entry
    plugin = plugins.for_config(config) if config is not None else None
    if plugin is not None:
        return plugin_architecture(plugin)
    known = ", ".join(ARCHITECTURES)
    raise TypeError(
        f"only resizers of a storable architecture ({known}, or a plugin's with a config_class) "
        f"can be saved, got a config of type {type(config).__name__}."
    )


def plugin_architecture(plugin: plugins.LoadedPlugin) -> Architecture:
    """The storable architecture of a plugin with a config class."""
    assert plugin.plugin.config_class is not None
    return Architecture(
        plugin.name, plugin.title, plugin.plugin.config_class, "", convex=False, plugin=plugin
    )


def describe(config: ResizerConfig) -> str:
    """What a resizer is, in a few words for ``hub list``: ``DownsizeNet, 2x2 taps, 3x16 convs``,
    ``Talebi, 16 filters, 2 res blocks``, ``strided conv, 2x2 stride 2``, or a plugin's title
    and package (``tiny_learned resizer (plugin tiny-resizer 0.1.0)``)."""
    if not isinstance(config, (DownsizeNetConfig, TalebiConfig, StridedConfig)):
        plugin = architecture_of(config).plugin
        assert plugin is not None
        return f"{plugin.title} (plugin {plugin.package} {plugin.version})"
    if isinstance(config, TalebiConfig):
        blocks = config.residual_blocks
        return f"Talebi, {config.filters} filters, {blocks} res block{'s' if blocks > 1 else ''}"
    if isinstance(config, StridedConfig):
        return f"strided conv, {config.k}x{config.k} stride {config.k}"
    taps = {"bilinear": "2x2 taps", "bicubic": "4x4 taps", "antialias": "antialias taps"}
    parts = [
        "DownsizeNet",
        taps.get(config.neighbourhood, f"{config.neighbourhood} taps"),
        f"{config.conv_layers}x{config.channels} convs" if config.conv_layers else "no convs",
    ]
    if not config.use_distance:
        parts.append("texture only")
    return ", ".join(parts)
