"""The one way to name a resizer: :func:`create_resizer` and :func:`list_resizers`.

As timm's ``create_model``, a name is looked up in a table of builders, not in a chain of ifs::

    create_resizer("bilinear")                      # a fixed resizer (no parameters)
    create_resizer("downsizenet", conv_layers=2)    # a fresh DownsizeNet, config overrides
    create_resizer("talebi", residual_blocks=2)     # a fresh learned baseline (also "strided")
    create_resizer("hf-hub:owner/name@revision")    # published on the Hugging Face Hub
    create_resizer("downsizenet/scenes-a-noisy-x0.3") # the local hub, then the shipped resizers
    create_resizer("path/to/folder")                # a folder with config.json + weights
    create_resizer(module)                          # an nn.Module passes through

A name that is not in the table is a published resizer: it is resolved and loaded by
:mod:`downsizenet_hub.hub` (strictly, safetensors only, in eval mode) as the architecture its
config.json names.

**Resolved once.** A name is checked and resolved where it enters: :func:`resolve_resizer` turns it
into a :class:`ResizerRef`, which says what it is (a built-in name, a plugin's, a published
resizer) and where it lives (the plugin's package; the folder, and whether a directory, the local
hub, the shipped resizers or the Hugging Face cache). ``create_resizer`` takes that value and
builds it without checking or looking it up again; given a string, it resolves it first.

**Registering an architecture.** A builder takes the architecture's configuration as keywords and
returns a fresh module with the resizer call signature ``(images, size=None,
scale_factor=None)``. One line adds it::

    register_resizer("talebi", TalebiResizer)

after which ``create_resizer("talebi", **config)`` builds it, :func:`list_resizers` lists it, and
everything that names resizers through this module (``pretrain --resizer talebi``, the tools,
``hubconf.py``) can train or use it. Storing one in the hub is a separate step: its config class
and module class get an entry in :data:`downsizenet_hub.hub.architectures.ARCHITECTURES`, which
names the architecture in ``config.json`` (talebi and strided have both).

**Resizers from other packages.** An installed package registers a resizer (and, to publish it,
its config class) through the ``downsizenet_hub.resizers`` entry-point group, and a command's
``--plugin MODULE`` imports one that is not installed (see :mod:`downsizenet_hub.plugins`). A
plugin's name is looked up after the built-in names, which it can never replace; it is built,
listed (among the learned resizers) and published like the built-in ones.

**Why the model's storage methods live outside the core.** :mod:`downsizenet_hub.resizing` must
import nothing else of the package (an import-linter contract), and the storage of
:mod:`downsizenet_hub.hub` builds a DownsizeNet when it loads one, so the core class cannot call
into the hub, not even lazily inside a method (import-linter counts function-level imports, and the
loop would be real). Instead the direction is one way: the registry and the hub import the core.
``downsizenet_hub.DownsizeNet`` (what the README imports) is
:class:`downsizenet_hub.hub.model.DownsizeNet`, the core class plus ``from_pretrained`` /
``save_pretrained`` / ``push_to_hub`` that delegate to the hub (which takes the class to build as
an argument, so it never imports it back); the registry loads published resizers as that class.
Code that only resizes can import :class:`downsizenet_hub.resizing.DownsizeNet` without paying for
storage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from torch import nn

from downsizenet_hub import plugins
from downsizenet_hub.resizing.fixed import FIXED_RESIZERS, FixedResizer
from downsizenet_hub.resizing.strided import StridedResizer
from downsizenet_hub.resizing.talebi import TalebiResizer

if TYPE_CHECKING:  # the hub is imported on first use: building a fixed resizer needs no storage
    from downsizenet_hub.hub.refs import ResolvedRef

#: A builder: configuration keywords in, a fresh resizer module out.
Builder = Callable[..., nn.Module]

#: The name of a fresh, trainable DownsizeNet (the paper's default configuration).
TRAINABLE = "downsizenet"

_BUILDERS: dict[str, Builder] = {}
_FIXED: set[str] = set()


def register_resizer(name: str, builder: Builder, *, fixed: bool = False) -> None:
    """Make ``create_resizer(name, **config)`` call ``builder(**config)``.

    ``fixed``: a classical resizer without parameters or configuration (never trained).
    A name already registered, or one that looks like a published reference (it contains ``/``
    or ``:``), is refused with a ValueError.
    """
    if not _plain_word(name):
        raise ValueError(f"a registered resizer name is a plain word, got {name!r}.")
    if name in _BUILDERS:
        raise ValueError(f"a resizer named {name!r} is already registered.")
    _BUILDERS[name] = builder
    if fixed:
        _FIXED.add(name)


def list_resizers(*, fixed: bool | None = None) -> list[str]:
    """The registered names, in registration order, then the plugins' (sorted): all, only the
    fixed ones (``fixed=True``), or only those with parameters (``fixed=False``; plugins count
    as learned). Published resizers are listed by ``downsizenet hub list``
    (:func:`downsizenet_hub.hub.list_published`).

    Raises:
        plugins.PluginError: an installed plugin takes a built-in resizer's name.
    """
    built_in = [name for name in _BUILDERS if fixed is None or (name in _FIXED) == fixed]
    return built_in if fixed else [*built_in, *plugins.names()]


def is_fixed(name: str) -> bool:
    """Whether ``name`` is a registered classical resizer (no parameters, nothing to train)."""
    return name in _FIXED


def is_registered(name: str) -> bool:
    """Whether ``name`` is in the table or a plugin's (else :func:`create_resizer` treats it as
    published)."""
    return name in _BUILDERS or is_plugin(name)


def is_plugin(name: str) -> bool:
    """Whether ``name`` is a plugin's resizer (installed, or loaded with ``--plugin``)."""
    return _plain_word(name) and name not in _BUILDERS and plugins.is_plugin_name(name)


def check_publishable(name: str) -> None:
    """Refuse, before training, to publish a plugin's resizer that its plugin gives no config
    class for (the hub could not load it back); built-in names pass."""
    plugin = plugins.get(name) if is_plugin(name) else None
    if plugin is not None and plugin.plugin.config_class is None:
        raise plugin.error(f"{name!r} has no config_class, so it cannot be published.")


def _plain_word(name: object) -> bool:
    return isinstance(name, str) and bool(name) and "/" not in name and ":" not in name


@dataclass(frozen=True)
class ResizerRef:
    """A resizer reference resolved once (:func:`resolve_resizer`): what it names and where that
    lives. Code below the place where a name enters passes this value, not the name again.

    ``text`` is the reference as written (what arms, run recipes and messages show). ``kind``:
    ``"builtin"`` (a name in the table), ``"plugin"`` (a plugin's name; ``plugin`` is the
    package providing it, imported and checked) or ``"published"`` (``published`` is where it
    was found: a directory, the local hub, the shipped resizers or the Hugging Face cache, with
    the folder holding config.json and model.safetensors).
    """

    text: str
    kind: Literal["builtin", "plugin", "published"]
    plugin: plugins.LoadedPlugin | None = None
    published: ResolvedRef | None = None


def resolve_resizer(name: str) -> ResizerRef:
    """Resolve ``name`` (see the module docstring for the forms) once, without building it.

    Raises:
        ValueError: an empty name, a malformed hub name, a broken plugin
            (:class:`~downsizenet_hub.plugins.PluginError`); FileNotFoundError (from the hub)
            when a published reference leads nowhere.
    """
    return _registered(name) or _published(name, {})


def create_resizer(name: str | ResizerRef | nn.Module, **config: Any) -> nn.Module:
    """The resizer ``name`` refers to (see the module docstring for the forms).

    Args:
        name: a module (returned as is), a registered name, a plugin's name, a published
            resizer reference, or a reference already resolved by :func:`resolve_resizer`
            (built without being checked again).
        **config: the architecture's configuration for a fresh learned resizer; refused for fixed
            and published ones (a published resizer's architecture comes from its config.json).

    Raises:
        ValueError: an empty name, configuration given where none is taken, a broken plugin
            (:class:`~downsizenet_hub.plugins.PluginError`, one sentence naming it);
            FileNotFoundError (from the hub) when a published reference leads nowhere.
    """
    if isinstance(name, nn.Module):
        if config:
            raise ValueError("a resizer module takes no configuration; build it configured.")
        return name
    ref = name if isinstance(name, ResizerRef) else _registered(name) or _published(name, config)
    if ref.kind == "builtin":
        if config and ref.text in _FIXED:
            raise ValueError(f"the fixed resizer {ref.text!r} takes no configuration.")
        return _BUILDERS[ref.text](**config)
    if ref.plugin is not None:  # checked: its configuration, the module and its call signature
        return ref.plugin.create(**config)
    _refuse_config(config)
    assert ref.published is not None
    from downsizenet_hub.hub import api  # storage, imported on first use
    from downsizenet_hub.hub.model import DownsizeNet

    model, _ = api.load_resolved(ref.published, build=DownsizeNet)
    return model


def _registered(name: object) -> ResizerRef | None:
    """``name`` checked (the one check of a resizer reference where it enters) and found in the
    table or among the plugins; None for a published reference."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a resizer reference must be a non-empty string, got {name!r}.")
    plugins.names()  # an installed plugin taking a built-in name is refused, never ignored
    if name in _BUILDERS:
        return ResizerRef(name, "builtin")
    plugin = plugins.get(name) if _plain_word(name) else None
    return ResizerRef(name, "plugin", plugin=plugin) if plugin is not None else None


def _published(name: str, config: dict[str, Any]) -> ResizerRef:
    """The published resizer ``name`` (already checked by :func:`_registered`), found once."""
    _refuse_config(config)  # before the file system or the network is consulted
    from downsizenet_hub.hub.refs import locate

    return ResizerRef(name, "published", published=locate(name))


def _refuse_config(config: dict[str, Any]) -> None:
    if config:
        raise ValueError("a published resizer's configuration comes from its config.json.")


def load_published(ref: str, **options: Any) -> nn.Module:
    """A published resizer, loaded strictly in eval mode as the class of its architecture (a
    DownsizeNet as ``downsizenet_hub.DownsizeNet``); ``options``: revision, device, cache_dir,
    token, endpoint; see :func:`downsizenet_hub.hub.from_pretrained`."""
    from downsizenet_hub.hub import api  # storage, imported on first use
    from downsizenet_hub.hub.model import DownsizeNet

    return api.from_pretrained(ref, build=DownsizeNet, **options)


def _fresh_downsizenet(**config: Any) -> nn.Module:
    from downsizenet_hub.hub.model import DownsizeNet  # the class with the storage methods

    return DownsizeNet(**config)


def _fixed_builder(mode: str) -> Builder:
    return lambda: FixedResizer(mode)  # type: ignore[arg-type]


for _mode in FIXED_RESIZERS:
    register_resizer(_mode, _fixed_builder(_mode), fixed=True)
register_resizer(TRAINABLE, _fresh_downsizenet)
register_resizer("talebi", TalebiResizer)
register_resizer("strided", StridedResizer)
