"""What a study runs, as data: :class:`StudyConfig` and its parts.

Over 300 lines because every part of a study file is here, one commented dataclass each, so the
format reads top to bottom in one place (the reading and checking live in config_file.py).

Build one with :func:`downsizenet_hub.study.config_file.study_config` (from parsed JSON/TOML,
checking every field), :func:`~downsizenet_hub.study.config_file.load_config` (a file) or
:func:`downsizenet_hub.study.presets.preset`. Bilinear is always added as the baseline every
difference is measured against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from downsizenet_hub import plugins
from downsizenet_hub.registry import TRAINABLE, check_publishable, is_plugin, list_resizers
from downsizenet_hub.resizing.baseline_config import StridedConfig, TalebiConfig
from downsizenet_hub.resizing.config import DownsizeNetConfig

#: The resizer every difference is measured against (paired by seed).
BASELINE = "bilinear"
#: Fixed resizers a study may compare (nearest is left out: it is not a downsizing method).
STUDY_FIXED = tuple(name for name in list_resizers(fixed=True) if name != "nearest")
#: Named DownsizeNet variants: the paper's ablations, as DownsizeNetConfig overrides.
RESIZER_ALIASES: dict[str, dict[str, Any]] = {
    "downsizenet": {},
    **{f"downsizenet-conv{n}": {"conv_layers": n} for n in range(1, 6)},
    # Table 5: texture only (no relative-distance map), four conv layers as in the paper.
    "downsizenet-texture": {"conv_layers": 4, "use_distance": False},
    "downsizenet-bicubic": {"neighbourhood": "bicubic"},
    "downsizenet-antialias": {"neighbourhood": "antialias"},
}
#: The learned resizers a study can train, by architecture, with their config classes: DownsizeNet
#: and the learned baselines it is compared with (Talebi and Milanfar's resizer; a strided conv).
ARCHITECTURES: dict[str, type[DownsizeNetConfig] | type[TalebiConfig] | type[StridedConfig]] = {
    TRAINABLE: DownsizeNetConfig,
    "talebi": TalebiConfig,
    "strided": StridedConfig,
}
#: The learned baselines by name, at their default configurations.
LEARNED_BASELINES = tuple(name for name in ARCHITECTURES if name != TRAINABLE)
#: Every built-in learned resizer's name, as (architecture, config overrides).
_BUILTIN_LEARNED: dict[str, tuple[str, dict[str, Any]]] = {
    **{alias: (TRAINABLE, overrides) for alias, overrides in RESIZER_ALIASES.items()},
    **{name: (name, {}) for name in LEARNED_BASELINES},
}
EXPERIMENT_KINDS = ("segmentation", "transfer")


@dataclass(frozen=True)
class ResizerSpec:
    """A resizer under study: a fixed one (``overrides is None``) or a learned one.

    ``label`` names it in tables and cell keys; ``overrides`` are fields of the architecture's
    config (DownsizeNetConfig for ``downsizenet``, TalebiConfig, StridedConfig) as sorted
    ``(name, value)`` pairs (hashable, stable in JSON).
    """

    label: str
    overrides: tuple[tuple[str, Any], ...] | None = None
    architecture: str = TRAINABLE

    @property
    def learned(self) -> bool:
        return self.overrides is not None

    @property
    def is_downsizenet(self) -> bool:
        return self.learned and self.architecture == TRAINABLE

    @property
    def ref(self) -> str:
        """What :func:`downsizenet_hub.registry.create_resizer` takes."""
        return self.architecture if self.learned else self.label

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.overrides or ())

    def to_json(self) -> str | dict[str, Any]:
        if not self.learned:
            return self.label
        if self.architecture != TRAINABLE:
            if self.label == self.architecture and not self.config:
                return self.label
            return {"label": self.label, "architecture": self.architecture, **self.config}
        if RESIZER_ALIASES.get(self.label) == self.config:
            return self.label
        return {"label": self.label, **self.config}


def resizer_spec(value: object, where: str) -> ResizerSpec:
    """A resizer from a config value: a fixed name, an alias, a learned baseline's name, a
    plugin's resizer's name (see :mod:`downsizenet_hub.plugins`; the study file only names it),
    or a table ``{label, [architecture,] config fields}`` (architecture ``downsizenet`` by
    default, or a plugin's resizer's name)."""
    if isinstance(value, str):
        if value in STUDY_FIXED:
            return ResizerSpec(value)
        if value in RESIZER_ALIASES:
            return _learned(value, TRAINABLE, RESIZER_ALIASES[value], where)
        if value in LEARNED_BASELINES or is_plugin(value):
            return _learned(value, value, {}, where)
        known = [*STUDY_FIXED, *RESIZER_ALIASES, *LEARNED_BASELINES, *plugins.names()]
        raise ValueError(f"{where}: unknown resizer {value!r}; expected one of {known} or a table.")
    if isinstance(value, Mapping):
        overrides = dict(value)
        label = overrides.pop("label", None)
        architecture = overrides.pop("architecture", TRAINABLE)
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"{where}: a learned resizer's table needs a 'label' string.")
        if architecture not in ARCHITECTURES and not is_plugin(architecture):
            known = [*ARCHITECTURES, *plugins.names()]
            raise ValueError(
                f"{where}: architecture must be one of {known} (a plugin's resizer: installed, "
                f"or its module named with --plugin), got {architecture!r}."
            )
        builtin = _BUILTIN_LEARNED.get(label, (architecture, overrides))
        if is_plugin(label):  # a plugin's name alone is its resizer at its default config
            builtin = (label, {})
        taken = label in STUDY_FIXED or builtin != (architecture, overrides)
        if taken:
            raise ValueError(f"{where}: label {label!r} is taken by a built-in resizer.")
        return _learned(label, architecture, overrides, where)
    raise TypeError(f"{where}: a resizer is a name or a table, got {value!r}.")


def _learned(label: str, architecture: str, overrides: dict[str, Any], where: str) -> ResizerSpec:
    try:
        if architecture in ARCHITECTURES:
            ARCHITECTURES[architecture].from_dict(dict(overrides))
        else:  # the study stores every resizer it trains: the plugin needs a config class
            check_publishable(architecture)
            learned_config(architecture, overrides)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where} ({label}): {error}") from None
    return ResizerSpec(label, tuple(sorted(overrides.items())), architecture)


def learned_config(architecture: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A learned resizer's whole configuration, defaults spelled out: its built-in architecture's
    config class, or its plugin's (one without a config class takes none: ``{}``)."""
    if architecture in ARCHITECTURES:
        return ARCHITECTURES[architecture](**overrides).to_dict()
    plugin = plugins.get(architecture)
    if plugin is None:
        raise ValueError(f"no built-in or plugin resizer is named {architecture!r}.")
    parsed = plugin.parse_config(dict(overrides))
    return {} if parsed is None else plugin.config_dict(parsed)


def plugin_entry(resizer: ResizerSpec) -> dict[str, Any]:
    """What a cell's key adds for a plugin's resizer: ``{"plugin": {"name": package, "version":
    version}}``, so that another version of the plugin trains new cells; ``{}`` for a built-in
    resizer, whose cells' keys stay as they were."""
    if not resizer.learned or resizer.architecture in ARCHITECTURES:
        return {}
    return {"plugin": plugins.provenance(resizer.architecture)}


@dataclass(frozen=True)
class DataSettings:
    """One task's data; see :class:`downsizenet_hub.experiments.common.DataOptions`."""

    # "scenes" (built in) or a real dataset: voc, cityscapes (segmentation), coco (detection).
    name: str = "scenes"
    # Folder of a real dataset; None: scenes are built, others looked for in the data folder.
    root: str | None = None
    # Pipeline input size (H, W); None: the dataset's default (300 px on scenes).
    image_size: tuple[int, int] | None = None
    # scenes only: numbers of train and val scenes (None: the scenes default).
    train_images: int | None = None
    val_images: int | None = None
    scenes_seed: int = 0
    # scenes only: the item layout, "large" (48-72 px items) or "small" (24-40 px).
    items: str = "large"
    # scenes only: the objects and backgrounds, "all", "A" or "B" (data.composition.SCENE_FAMILIES).
    family: str = field(default="all", metadata={"cell_key": "when-set"})
    # A transfer's own data variant ("clean" or "noisy"), where it differs from the pretraining's
    # (an experiment's ``transfer_data``); None: the experiment's variants.
    variant: str | None = field(default=None, metadata={"cell_key": "when-set"})


@dataclass(frozen=True)
class PretrainSettings:
    """The segmentation pipeline every segmentation cell trains (``downsizenet pretrain``)."""

    data: DataSettings = field(default_factory=DataSettings)
    # "tiny" (CPU) or a torchvision ResNet; width of the tiny backbone.
    backbone: str = "tiny"
    width: int = 32
    # Training epochs of a segmentation experiment that names none.
    epochs: int = 3
    batch_size: int = 8
    lr: float = 2e-3


@dataclass(frozen=True)
class TransferSettings:
    """The frozen-VGG16 detector whose heads every transfer cell trains (``transfer``)."""

    data: DataSettings = field(default_factory=DataSettings)
    # "auto" (imagenet if cached, else hed), "imagenet", "hed" or a state-dict file.
    backbone_weights: str = "auto"
    # Detection heads: "centernet" (dense, learns in CPU minutes) or "fasterrcnn".
    head: str = "centernet"
    # The fixed head budget, the same for every resizer.
    epochs: int = 10
    batch_size: int = 8
    lr: float = 2e-3


@dataclass(frozen=True)
class SegmentationExperiment:
    """Resizers trained in the segmentation pipeline at each scale and variant (Tables 4-6)."""

    title: str
    resizers: tuple[ResizerSpec, ...]
    scales: tuple[float, ...] = (0.3,)
    # None: the study's variants / the pretrain epochs / the study's seeds.
    variants: tuple[str, ...] | None = None
    epochs: int | None = None
    data: DataSettings | None = None


@dataclass(frozen=True)
class TransferExperiment:
    """A resizer pretrained for each of ``pretrain_epochs`` on segmentation, then transferred
    frozen to detection beside the ``baselines`` (Table 3): fixed ones transfer as they are,
    learned ones (e.g. ``talebi``) are pretrained for the longest of ``pretrain_epochs`` first."""

    title: str
    resizer: ResizerSpec = field(default_factory=lambda: resizer_spec(TRAINABLE, "resizer"))
    pretrain_epochs: tuple[int, ...] = (3,)
    baselines: tuple[ResizerSpec, ...] = (ResizerSpec(BASELINE),)
    scale: float = 0.3
    variants: tuple[str, ...] | None = None
    # Resizers to publish to the local hub, as (label, name) pairs: the first seed's resizer of
    # that label pretrained longest (the experiment's resizer, or a learned baseline).
    publish: tuple[tuple[str, str], ...] = ()
    # The pretraining's and the transfer's own data (e.g. another scene family), where they
    # differ from the study's ``pretrain.data`` and ``transfer.data``.
    pretrain_data: DataSettings | None = None
    transfer_data: DataSettings | None = None


Experiment = SegmentationExperiment | TransferExperiment


@dataclass(frozen=True)
class StudyConfig:
    """A whole study. Build it with :func:`study_config` (checks every field) or a preset."""

    name: str
    seeds: tuple[int, ...]
    variants: tuple[str, ...]
    pretrain: PretrainSettings
    transfer: TransferSettings
    experiments: tuple[Experiment, ...]
    grid_images: int = 2
    # One line on what the study covers and leaves out, shown in results.md.
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The config as the JSON a study file would hold (``study_config`` reads it back)."""
        return {
            "name": self.name,
            "description": self.description,
            "seeds": list(self.seeds),
            "variants": list(self.variants),
            "grid_images": self.grid_images,
            "pretrain": _plain(self.pretrain),
            "transfer": _plain(self.transfer),
            "experiments": [_experiment_dict(e) for e in self.experiments],
        }


def _plain(settings: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, item.name)
        if isinstance(value, DataSettings):
            value = {k: v for k, v in _plain(value).items() if v is not None}
        elif isinstance(value, tuple):
            value = list(value)
        out[item.name] = value
    return out


def _experiment_dict(experiment: Experiment) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": _kind(experiment), "title": experiment.title}
    if isinstance(experiment, SegmentationExperiment):
        data["resizers"] = [r.to_json() for r in experiment.resizers]
        data["scales"] = list(experiment.scales)
        if experiment.epochs is not None:
            data["epochs"] = experiment.epochs
        if experiment.data is not None:
            data["data"] = {k: v for k, v in _plain(experiment.data).items() if v is not None}
    else:
        data["resizer"] = experiment.resizer.to_json()
        data["pretrain_epochs"] = list(experiment.pretrain_epochs)
        data["baselines"] = [r.to_json() for r in experiment.baselines]
        data["scale"] = experiment.scale
        if len(experiment.publish) == 1 and experiment.publish[0][0] == experiment.resizer.label:
            data["publish"] = experiment.publish[0][1]  # the experiment's resizer: a plain name
        elif experiment.publish:
            data["publish"] = dict(experiment.publish)
        for key in ("pretrain_data", "transfer_data"):
            value = getattr(experiment, key)
            if value is not None:
                data[key] = {k: v for k, v in _plain(value).items() if v is not None}
    if experiment.variants is not None:
        data["variants"] = list(experiment.variants)
    return data


def _kind(experiment: Experiment) -> str:
    return "segmentation" if isinstance(experiment, SegmentationExperiment) else "transfer"
