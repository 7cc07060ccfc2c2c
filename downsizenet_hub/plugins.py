"""Resizers from other packages: the ``downsizenet_hub.resizers`` entry points, ``--plugin``.

A package adds a resizer to every command and API that names resizers (``create_resizer``,
``list_resizers``, ``pretrain --resizer NAME``, ``transfer``, a study row's ``"architecture":
"NAME"``, ``hub publish/list/show``, ``from_pretrained``) by naming a :class:`ResizerPlugin` in
its ``pyproject.toml``::

    [project.entry-points."downsizenet_hub.resizers"]
    tiny_learned = "tiny_resizer:plugin"      # the entry point's name is the resizer's name

as timm's and Hugging Face's libraries find models by name. Without installing anything, a
command's ``--plugin MODULE`` (or ``MODULE:OBJECT``) imports a module and registers the
:class:`ResizerPlugin` objects at its top level (:func:`load_module`). A study file only names
resizers; it never imports code.

A plugin is looked at lazily: the entry points' names are read when a name is not a built-in
one, and a plugin's module is imported when its name is used. Whatever is wrong with a plugin
(it does not import, its object is not a ResizerPlugin, its builder raises, its module does not
take the resizer call signature ``(images, size=None, scale_factor=None)``, its name is a built-in
resizer's) is a :class:`PluginError`: one sentence naming the plugin and the cause. A built-in
name can never be replaced.

This module imports nothing else of the package (torch only when a plugin's module is checked),
so that the registry and the hub can both consult it.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

#: The entry-point group an installed package registers its resizers in.
GROUP = "downsizenet_hub.resizers"
#: The names of the built-in resizers (fixed and learned), which no plugin may take; a test keeps
#: this equal to the registry's built-in names and the hub's architectures.
BUILT_IN_NAMES = frozenset(
    {"bilinear", "bicubic", "area", "antialias", "nearest", "downsizenet", "talebi", "strided"}
)


class PluginError(ValueError):
    """A broken plugin, in one sentence naming it and the cause (a user error: exit 2)."""


@dataclass(frozen=True)
class ResizerPlugin:
    """What a plugin registers: a named builder, and optionally the config class that lets the
    hub publish and load what it builds.

    Example (a whole plugin; see ``examples/tiny-resizer`` in the repository)::

        plugin = ResizerPlugin("tiny_learned", TinyResizer, config_class=TinyConfig)
    """

    # The resizer's name: create_resizer(name), --resizer name, a study's "architecture": name,
    # and config.json's "architecture". A plain word that is not a built-in resizer's name.
    name: str
    # Configuration keywords in, a fresh nn.Module out; the module is called
    # ``module(images, size=None, scale_factor=None)`` with images (B, C, H, W) float.
    build: Callable[..., nn.Module]
    # Optional, to publish and load: a class with ``to_dict() -> dict`` (JSON-able) and a
    # classmethod ``from_dict(dict)`` that refuses unknown keys; the built module keeps its
    # configuration as ``module.config`` (an instance), and is rebuilt as
    # ``build(**config.to_dict())`` before its weights are loaded strictly.
    config_class: type | None = None
    # What cards and ``hub list`` call it (default: "<name> resizer").
    title: str = ""


@dataclass(frozen=True)
class LoadedPlugin:
    """A plugin found and checked, with where it came from (the study keys its cells by
    ``package`` and ``version``)."""

    plugin: ResizerPlugin
    # The distribution that installed it (its entry point's), or the --plugin module's name.
    package: str
    # The distribution's version; for a --plugin module, its __version__ or a hash of its source.
    version: str
    # How it was found, for messages: "entry point tiny_learned = tiny_resizer:plugin".
    origin: str

    @property
    def name(self) -> str:
        return self.plugin.name

    @property
    def title(self) -> str:
        return self.plugin.title or f"{self.plugin.name} resizer"

    def error(self, cause: str) -> PluginError:
        """``plugin 'pkg' (origin): cause``."""
        return PluginError(f"plugin {self.package!r} ({self.origin}): {cause}")

    def parse_config(self, data: dict[str, Any]) -> Any:
        """The plugin's config object from a dict (config.json's object, a study row's fields);
        a plugin without a config class takes no configuration."""
        config_class = self.plugin.config_class
        if config_class is None:
            if data:
                raise self.error(
                    f"{self.name!r} has no config class, so it takes no configuration; got "
                    f"{sorted(data)}."
                )
            return None
        try:
            return config_class.from_dict(dict(data))  # type: ignore[attr-defined]
        except (TypeError, ValueError) as error:
            raise self.error(
                f"invalid configuration for {self.name!r}: {_one_line(error)}"
            ) from None
        except Exception as error:
            raise self.error(f"its config class raised {_describe(error)}") from None

    def config_dict(self, config: object) -> dict[str, Any]:
        """``config.to_dict()``, checked to be a dict."""
        try:
            data = config.to_dict()  # type: ignore[attr-defined]
        except Exception as error:
            raise self.error(f"its config's to_dict() raised {_describe(error)}") from None
        if not isinstance(data, dict):
            raise self.error(f"its config's to_dict() returned {type(data).__name__}, not a dict.")
        return data

    def create(self, **config: Any) -> nn.Module:
        """A fresh module from the builder, its configuration checked by the config class first
        (defaults spelled out), and the module checked to be a resizer."""
        parsed = self.parse_config(config)
        keywords = config if parsed is None else self.config_dict(parsed)
        try:
            module = self.plugin.build(**keywords)
        except Exception as error:
            raise self.error(f"its builder raised {_describe(error)}") from None
        check_module(self, module)
        return module


def check_module(plugin: LoadedPlugin, module: object) -> None:
    """Refuse what is not an ``nn.Module`` taking ``(images, size=None, scale_factor=None)``."""
    from torch import nn

    if not isinstance(module, nn.Module):
        raise plugin.error(f"its builder returned {type(module).__name__}, not a torch.nn.Module.")
    try:
        signature = inspect.signature(module.forward)
        signature.bind(None, size=None, scale_factor=None)
    except (TypeError, ValueError):
        shown = _signature_text(module)
        raise plugin.error(
            f"{type(module).__name__}.forward{shown} does not take the resizer call signature "
            "(images, size=None, scale_factor=None)."
        ) from None


# Plugins found so far, by resizer name, from entry points and --plugin modules alike.
_LOADED: dict[str, LoadedPlugin] = {}
# The group's entry points by name, read once (see _entry_points).
_ENTRY_POINTS: dict[str, list[metadata.EntryPoint]] | None = None


def _entry_points() -> dict[str, list[metadata.EntryPoint]]:
    """The installed entry points of :data:`GROUP` by name (metadata only: nothing imported);
    a name a built-in resizer has is refused here."""
    global _ENTRY_POINTS
    if _ENTRY_POINTS is None:
        found: dict[str, list[metadata.EntryPoint]] = {}
        seen: set[tuple[str, str, str]] = set()
        for entry in _installed():
            key = (entry.name, entry.value, _package(entry))
            if key not in seen:  # a distribution found twice on sys.path
                seen.add(key)
                found.setdefault(entry.name, []).append(entry)
        _ENTRY_POINTS = found
    for name, entries in _ENTRY_POINTS.items():
        if name in BUILT_IN_NAMES:
            raise PluginError(
                f"plugin {_package(entries[0])!r} (entry point {name} = {entries[0].value}): "
                f"{name!r} is a built-in resizer's name, which a plugin cannot replace; rename it."
            )
    return _ENTRY_POINTS


def _installed() -> list[metadata.EntryPoint]:
    """The group's entry points in the installed distributions' metadata (tests replace it)."""
    return list(metadata.entry_points(group=GROUP))


def names() -> list[str]:
    """Every plugin resizer's name, sorted (installed or loaded with --plugin; none imported)."""
    return sorted(set(_entry_points()) | set(_LOADED))


def is_plugin_name(name: str) -> bool:
    """Whether ``name`` is a plugin resizer's (without importing it)."""
    return name in _LOADED or (name not in BUILT_IN_NAMES and name in _entry_points())


def get(name: str) -> LoadedPlugin | None:
    """The plugin registering ``name``, imported and checked on first use; None if none does."""
    if name in BUILT_IN_NAMES:
        return None
    entries = _entry_points().get(name, [])
    if name in _LOADED:
        return _LOADED[name]
    if not entries:
        return None
    if len(entries) > 1:
        packages = " and ".join(repr(_package(entry)) for entry in entries)
        raise PluginError(
            f"plugins {packages} both register the resizer {name!r}; uninstall one of them."
        )
    entry = entries[0]
    package = _package(entry)
    origin = f"entry point {name} = {entry.value}"
    try:
        found = entry.load()
    except Exception as error:
        raise PluginError(
            f"plugin {package!r} ({origin}): cannot import it: {_describe(error)}"
        ) from None
    version = entry.dist.version if entry.dist is not None else "unknown"
    loaded = _checked(found, package, version, origin, expected_name=name)
    _LOADED[name] = loaded
    return loaded


def load_all() -> list[LoadedPlugin]:
    """Every plugin, each imported and checked (the first broken one raises)."""
    for name in _entry_points():
        get(name)
    return [_LOADED[name] for name in sorted(_LOADED)]


def for_config(config: object) -> LoadedPlugin | None:
    """The plugin whose config class ``config`` is an instance of (exactly), if any."""
    for candidates in (lambda: list(_LOADED.values()), load_all):  # the imported ones first
        for loaded in candidates():
            if type(config) is loaded.plugin.config_class:
                return loaded
    return None


def load_module(spec: str) -> list[LoadedPlugin]:
    """Import ``MODULE`` (or ``MODULE:OBJECT``, or a file ``path/to/module.py[:OBJECT]``) and
    register its :class:`ResizerPlugin` objects (all those at its top level, or the one named);
    what ``--plugin`` does. Loading the same module again changes nothing."""
    module_name, _, attribute = spec.partition(":")
    origin = f"--plugin {spec}"
    if module_name.endswith(".py"):  # a file: imported by its name from its folder
        path = Path(module_name).expanduser()
        if not path.is_file():
            raise PluginError(f"{origin}: {path} is not a file.")
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        module_name = path.stem
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise PluginError(f"{origin}: expected a module to import, MODULE or MODULE:OBJECT.")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise PluginError(
            f"plugin {module_name!r} ({origin}): cannot import it: {_describe(error)}"
        ) from None
    version = str(getattr(module, "__version__", "") or _source_hash(module))
    if attribute:
        if not hasattr(module, attribute):
            raise PluginError(f"plugin {module_name!r} ({origin}): it has no {attribute!r}.")
        objects = [getattr(module, attribute)]
    else:
        objects = [value for value in vars(module).values() if isinstance(value, ResizerPlugin)]
        if not objects:
            raise PluginError(
                f"plugin {module_name!r} ({origin}): the module defines no ResizerPlugin "
                "(see downsizenet_hub.plugins)."
            )
    found = []
    for value in objects:
        loaded = _checked(value, module_name, version, origin)
        _register(loaded)
        found.append(loaded)
    return found


def provenance(name: str) -> dict[str, str] | None:
    """``{"name": package, "version": version}`` of the plugin registering ``name``, or None for
    a built-in resizer: what the study keys a plugin's cells by."""
    loaded = get(name)
    return None if loaded is None else {"name": loaded.package, "version": loaded.version}


def _register(loaded: LoadedPlugin) -> None:
    name = loaded.name
    earlier = _LOADED.get(name) or get(name)  # an installed plugin of that name is imported
    if earlier is not None and earlier.plugin is loaded.plugin:
        return  # the same object: the installed module named again, or a module loaded twice
    if earlier is not None:
        raise loaded.error(
            f"the resizer {name!r} is already registered by plugin {earlier.package!r}."
        )
    _LOADED[name] = loaded


def _checked(
    value: object, package: str, version: str, origin: str, expected_name: str | None = None
) -> LoadedPlugin:
    """``value`` as a checked :class:`LoadedPlugin`, or a PluginError naming the cause."""
    where = f"plugin {package!r} ({origin})"
    if not isinstance(value, ResizerPlugin):
        raise PluginError(
            f"{where}: names a {type(value).__name__}, not a downsizenet_hub.plugins.ResizerPlugin."
        )
    name = value.name
    if not isinstance(name, str) or not name or "/" in name or ":" in name or name != name.strip():
        raise PluginError(f"{where}: a resizer name is a plain word, got {name!r}.")
    if name in BUILT_IN_NAMES:
        raise PluginError(
            f"{where}: {name!r} is a built-in resizer's name, which a plugin cannot replace; "
            "rename it."
        )
    if expected_name is not None and name != expected_name:
        raise PluginError(f"{where}: the entry point is named {expected_name!r} but the plugin "
                          f"{name!r}; give both the same name.")  # fmt: skip
    if not callable(value.build):
        raise PluginError(f"{where}: its build ({value.build!r}) is not callable.")
    config_class = value.config_class
    if config_class is not None and not (
        callable(getattr(config_class, "from_dict", None))
        and callable(getattr(config_class, "to_dict", None))
    ):
        shown = getattr(config_class, "__name__", config_class)
        raise PluginError(
            f"{where}: its config_class {shown!r} needs to_dict() and a from_dict() classmethod."
        )
    return LoadedPlugin(value, package, version, origin)


def _package(entry: metadata.EntryPoint) -> str:
    if entry.dist is not None:
        return str(entry.dist.name)
    return entry.value.partition(":")[0].split(".")[0]


def _source_hash(module: object) -> str:
    """A version for a module that declares none: ``sha256:`` and 12 digits of its source."""
    path = getattr(module, "__file__", None)
    try:
        data = Path(path).read_bytes() if path else b""
    except OSError:
        data = b""
    return f"sha256:{hashlib.sha256(data).hexdigest()[:12]}" if data else "unknown"


def _signature_text(module: object) -> str:
    try:
        return str(inspect.signature(module.forward))  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return "(...)"


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {_one_line(error)}"


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _clear() -> None:
    """Forget every plugin found (tests)."""
    global _ENTRY_POINTS
    _LOADED.clear()
    _ENTRY_POINTS = None
