"""What a study runs, as data: :class:`StudyConfig`, read from a preset or a JSON/TOML file.

A study file is one table (JSON object)::

    name = "my-study"                 # results go to results/<name>/ unless --results-dir
    seeds = [0, 1, 2]                 # every cell runs once per seed (>= 1; 3+ for intervals)
    variants = ["noisy", "clean"]     # built-in data variants, unless an experiment names its own
    grid_images = 2                   # val images in the resizer comparison grid (0: none)

    [pretrain]                        # segmentation pipeline settings (``downsizenet pretrain``)
    backbone = "tiny"; width = 32; epochs = 3; batch_size = 8; lr = 0.002
    [pretrain.data]                   # name, root, image_size, train_images, val_images, ...
    train_images = 160

    [transfer]                        # frozen-VGG16 detector settings (``downsizenet transfer``)
    backbone_weights = "auto"; epochs = 4; batch_size = 8; lr = 0.002
    [transfer.data]

    [[experiments]]                   # a table of results; kind "segmentation" or "transfer"
    kind = "segmentation"
    title = "Output scale"
    scales = [0.55, 0.45, 0.35]
    resizers = ["downsizenet", {label = "texture", conv_layers = 4, use_distance = false}]

    [[experiments]]
    kind = "transfer"
    title = "Pretraining epochs"
    scale = 0.3
    pretrain_epochs = [1, 2, 4]
    baselines = ["bilinear", "area"]
    publish = "me/downsizenet-x0.3"   # optional: publish the first seed's longest-trained resizer

Every field is checked on reading, and an error names the field (``experiments[1].scales``) and
what was expected. Bilinear is always added as the baseline every difference is measured against.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

from downsizenet_hub.data import DATASETS
from downsizenet_hub.data.transforms import VARIANTS
from downsizenet_hub.pipelines.segmentation import BACKBONES
from downsizenet_hub.resizer import DownsizeNetConfig
from downsizenet_hub.resizers import TRAINABLE

#: The resizer every difference is measured against (paired by seed).
BASELINE = "bilinear"
#: Fixed resizers a study may compare (nearest is left out: it is not a downsizing method).
STUDY_FIXED = ("bilinear", "bicubic", "area", "antialias")
#: Named DownsizeNet variants: the paper's ablations, as DownsizeNetConfig overrides.
RESIZER_ALIASES: dict[str, dict[str, Any]] = {
    "downsizenet": {},
    **{f"downsizenet-conv{n}": {"conv_layers": n} for n in range(1, 6)},
    # Table 5: texture only (no relative-distance map), four conv layers as in the paper.
    "downsizenet-texture": {"conv_layers": 4, "use_distance": False},
    "downsizenet-bicubic": {"neighbourhood": "bicubic"},
    "downsizenet-antialias": {"neighbourhood": "antialias"},
}
EXPERIMENT_KINDS = ("segmentation", "transfer")


@dataclass(frozen=True)
class ResizerSpec:
    """A resizer under study: a fixed one (``overrides is None``) or a DownsizeNet configuration.

    ``label`` names it in tables and cell keys; ``overrides`` are DownsizeNetConfig fields as
    sorted ``(name, value)`` pairs (hashable, stable in JSON).
    """

    label: str
    overrides: tuple[tuple[str, Any], ...] | None = None

    @property
    def learned(self) -> bool:
        return self.overrides is not None

    @property
    def ref(self) -> str:
        """What :func:`downsizenet_hub.resizers.build_resizer` takes."""
        return TRAINABLE if self.learned else self.label

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.overrides or ())

    def to_json(self) -> str | dict[str, Any]:
        if not self.learned:
            return self.label
        if RESIZER_ALIASES.get(self.label) == self.config:
            return self.label
        return {"label": self.label, **self.config}


def resizer_spec(value: object, where: str) -> ResizerSpec:
    """A resizer from a config value: a fixed name, an alias, or ``{label, DownsizeNet fields}``."""
    if isinstance(value, str):
        if value in STUDY_FIXED:
            return ResizerSpec(value)
        if value in RESIZER_ALIASES:
            return _learned(value, RESIZER_ALIASES[value], where)
        known = [*STUDY_FIXED, *RESIZER_ALIASES]
        raise ValueError(f"{where}: unknown resizer {value!r}; expected one of {known} or a table.")
    if isinstance(value, Mapping):
        overrides = dict(value)
        label = overrides.pop("label", None)
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"{where}: a DownsizeNet table needs a non-empty 'label' string.")
        if label in STUDY_FIXED or (
            label in RESIZER_ALIASES and RESIZER_ALIASES[label] != overrides
        ):
            raise ValueError(f"{where}: label {label!r} is taken by a built-in resizer.")
        return _learned(label, overrides, where)
    raise TypeError(f"{where}: a resizer is a name or a table, got {value!r}.")


def _learned(label: str, overrides: dict[str, Any], where: str) -> ResizerSpec:
    try:
        DownsizeNetConfig.from_dict(dict(overrides))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where} ({label}): {error}") from None
    return ResizerSpec(label, tuple(sorted(overrides.items())))


@dataclass(frozen=True)
class DataSettings:
    """One task's data; see :class:`downsizenet_hub.experiments.common.DataOptions`."""

    # "scenes" (built in) or a real dataset: voc, cityscapes (segmentation), coco (detection).
    name: str = "scenes"
    # Folder of a real dataset; None: scenes are built, others looked for in the data folder.
    root: str | None = None
    # Pipeline input size (H, W); None: the dataset's default (300 px on scenes).
    image_size: tuple[int, int] | None = None
    # scenes only: numbers of train and val scenes (None: the scenes default, 800 and 200).
    train_images: int | None = None
    val_images: int | None = None
    scenes_seed: int = 0


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
    frozen to detection beside the fixed ``baselines`` (Table 3)."""

    title: str
    resizer: ResizerSpec = field(default_factory=lambda: resizer_spec(TRAINABLE, "resizer"))
    pretrain_epochs: tuple[int, ...] = (3,)
    baselines: tuple[str, ...] = (BASELINE,)
    scale: float = 0.3
    variants: tuple[str, ...] | None = None
    # Publish the first seed's resizer pretrained longest to the local hub under this name.
    publish: str | None = None


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
        data["baselines"] = list(experiment.baselines)
        data["scale"] = experiment.scale
        if experiment.publish is not None:
            data["publish"] = experiment.publish
    if experiment.variants is not None:
        data["variants"] = list(experiment.variants)
    return data


def _kind(experiment: Experiment) -> str:
    return "segmentation" if isinstance(experiment, SegmentationExperiment) else "transfer"


# -- reading ------------------------------------------------------------------------------------


class _Table:
    """One table of a study file, read field by field; every error names the field's path."""

    def __init__(self, data: object, where: str, allowed: Iterable[str]) -> None:
        if not isinstance(data, Mapping):
            raise TypeError(f"{where} must be a table (JSON object), got {_show(data)}.")
        allowed = tuple(allowed)
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {unknown}; expected some of {sorted(allowed)}."
            )
        self.data, self.where = data, where

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def string(self, key: str, default: str | None, choices: Iterable[str] = ()) -> str | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise TypeError(f"{self.path(key)} must be a non-empty string, got {_show(value)}.")
        choices = tuple(choices)
        if choices and value not in choices:
            raise ValueError(f"{self.path(key)} must be one of {list(choices)}, got {value!r}.")
        return value

    def integer(self, key: str, default: int | None, minimum: int = 0) -> int | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        return _integer(value, self.path(key), minimum)

    def number(self, key: str, default: float, low: float, high: float) -> float:
        return _number(self.data.get(key, default), self.path(key), low, high)

    def items(self, key: str, default: Iterable[Any] | None) -> list[Any] | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise TypeError(f"{self.path(key)} must be a list, got {_show(value)}.")
        values = list(value)
        if not values:
            raise ValueError(f"{self.path(key)} must not be empty.")
        return values


def _show(value: object) -> str:
    return (
        repr(value)
        if isinstance(value, (str, int, float, bool, type(None)))
        else type(value).__name__
    )


def _integer(value: object, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where} must be an integer >= {minimum}, got {_show(value)}.")
    return value


def _number(value: object, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where} must be a number, got {_show(value)}.")
    if not (math.isfinite(value) and low < value <= high):
        raise ValueError(f"{where} must be in ({low:g}, {high:g}], got {value!r}.")
    return float(value)


def _unique(values: list[Any], where: str) -> tuple[Any, ...]:
    if len(set(values)) != len(values):
        raise ValueError(f"{where} lists a value twice: {values}.")
    return tuple(values)


def _data(value: object, where: str) -> DataSettings:
    table = _Table(value, where, [f.name for f in fields(DataSettings)])
    name = table.string("name", "scenes", DATASETS)
    size = table.items("image_size", None)
    image_size = None
    if size is not None:
        if len(size) != 2:
            raise ValueError(f"{table.path('image_size')} must be [height, width], got {size}.")
        image_size = (
            _integer(size[0], table.path("image_size"), 8),
            _integer(size[1], table.path("image_size"), 8),
        )
    return DataSettings(
        name=name or "scenes",
        root=table.string("root", None),
        image_size=image_size,
        train_images=table.integer("train_images", None, 2),
        val_images=table.integer("val_images", None, 1),
        scenes_seed=table.integer("scenes_seed", 0) or 0,
    )


def _pretrain(value: object, where: str) -> PretrainSettings:
    table = _Table(value, where, [f.name for f in fields(PretrainSettings)])
    return PretrainSettings(
        data=_data(table.get("data", {}), table.path("data")),
        backbone=table.string("backbone", "tiny", BACKBONES) or "tiny",
        width=table.integer("width", 32, 4) or 32,
        epochs=table.integer("epochs", 3, 1) or 3,
        batch_size=table.integer("batch_size", 8, 2) or 8,
        lr=table.number("lr", 2e-3, 0.0, 10.0),
    )


def _transfer(value: object, where: str) -> TransferSettings:
    table = _Table(value, where, [f.name for f in fields(TransferSettings)])
    data = _data(table.get("data", {}), table.path("data"))
    if data.name == "cityscapes":
        raise ValueError(f"{table.path('data.name')}: cityscapes has no detection labels.")
    return TransferSettings(
        data=data,
        backbone_weights=table.string("backbone_weights", "auto") or "auto",
        epochs=table.integer("epochs", 10, 1) or 10,
        batch_size=table.integer("batch_size", 8, 2) or 8,
        lr=table.number("lr", 2e-3, 0.0, 10.0),
    )


def _variants(table: _Table, key: str, default: Iterable[str] | None) -> tuple[str, ...] | None:
    values = table.items(key, default)
    if values is None:
        return None
    for value in values:
        if value not in VARIANTS:
            raise ValueError(f"{table.path(key)} must list {list(VARIANTS)}, got {value!r}.")
    return _unique(values, table.path(key))


def _scale(value: object, where: str) -> float:
    return _number(value, where, 0.0, 1.0)


def _experiment(value: object, where: str) -> Experiment:
    if not isinstance(value, Mapping):
        raise TypeError(f"{where} must be a table (JSON object), got {_show(value)}.")
    kind = value.get("kind")
    if kind == "segmentation":
        table = _Table(
            value, where, ("kind", "title", "resizers", "scales", "variants", "epochs", "data")
        )
        resizers = [
            resizer_spec(r, f"{table.path('resizers')}[{i}]")
            for i, r in enumerate(table.items("resizers", None) or [])
        ]
        if not resizers:
            raise ValueError(f"{table.path('resizers')} is required: the resizers to compare.")
        labels = [r.label for r in resizers]
        _unique(labels, table.path("resizers"))
        scales = table.items("scales", [0.3]) or [0.3]
        data = table.get("data")
        return SegmentationExperiment(
            title=table.string("title", None) or _missing(table, "title"),
            resizers=tuple(resizers),
            scales=_unique(
                [_scale(s, f"{table.path('scales')}[{i}]") for i, s in enumerate(scales)],
                table.path("scales"),
            ),
            variants=_variants(table, "variants", None),
            epochs=table.integer("epochs", None, 1),
            data=None if data is None else _data(data, table.path("data")),
        )
    if kind == "transfer":
        table = _Table(
            value,
            where,
            ("kind", "title", "resizer", "pretrain_epochs", "baselines", "scale", "variants",
             "publish"),
        )  # fmt: skip
        resizer = resizer_spec(table.get("resizer", TRAINABLE), table.path("resizer"))
        if not resizer.learned:
            raise ValueError(f"{table.path('resizer')} must be a DownsizeNet (one to pretrain).")
        epochs = table.items("pretrain_epochs", [3]) or [3]
        baselines = table.items("baselines", [BASELINE]) or [BASELINE]
        for i, name in enumerate(baselines):
            if name not in STUDY_FIXED:
                raise ValueError(
                    f"{table.path('baselines')}[{i}] must be one of {list(STUDY_FIXED)}, "
                    f"got {name!r}."
                )
        publish = table.string("publish", None)
        if publish is not None:
            from downsizenet_hub.hub import validate_name

            try:
                validate_name(publish)
            except ValueError as error:
                raise ValueError(f"{table.path('publish')}: {error}") from None
        return TransferExperiment(
            title=table.string("title", None) or _missing(table, "title"),
            resizer=resizer,
            pretrain_epochs=tuple(
                sorted(
                    _unique(
                        [
                            _integer(e, f"{table.path('pretrain_epochs')}[{i}]", 1)
                            for i, e in enumerate(epochs)
                        ],
                        table.path("pretrain_epochs"),
                    )
                )
            ),
            baselines=_unique(baselines, table.path("baselines")),
            scale=_scale(table.get("scale", 0.3), table.path("scale")),
            variants=_variants(table, "variants", None),
            publish=publish,
        )
    raise ValueError(f"{where}.kind must be one of {list(EXPERIMENT_KINDS)}, got {kind!r}.")


def _missing(table: _Table, key: str) -> NoReturn:
    raise ValueError(f"{table.path(key)} is required.")


def study_config(data: object, where: str = "") -> StudyConfig:
    """Build and check a :class:`StudyConfig` from parsed JSON/TOML (``where`` prefixes errors)."""
    top = (
        "name", "description", "seeds", "variants", "grid_images", "pretrain", "transfer",
        "experiments",
    )  # fmt: skip
    table = _Table(data, where, top)
    name = table.string("name", None) or _missing(table, "name")
    if "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"{table.path('name')} must be a plain folder name, got {name!r}.")
    seeds = table.items("seeds", [0, 1, 2]) or []
    experiments = [
        _experiment(e, f"{table.path('experiments')}[{i}]")
        for i, e in enumerate(table.items("experiments", None) or [])
    ]
    if not experiments:
        raise ValueError(f"{table.path('experiments')} is required: at least one experiment.")
    _unique([e.title for e in experiments], f"{table.path('experiments')} titles")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise TypeError(f"{table.path('description')} must be a string.")
    config = StudyConfig(
        name=name,
        seeds=_unique(
            [_integer(s, f"{table.path('seeds')}[{i}]", 0) for i, s in enumerate(seeds)],
            table.path("seeds"),
        ),
        variants=_variants(table, "variants", ["noisy"]) or ("noisy",),
        pretrain=_pretrain(table.get("pretrain", {}), table.path("pretrain")),
        transfer=_transfer(table.get("transfer", {}), table.path("transfer")),
        experiments=tuple(experiments),
        grid_images=table.integer("grid_images", 2, 0) or 0,
        description=description,
    )
    if config.pretrain.data.name == "coco":
        raise ValueError(f"{table.path('pretrain.data.name')}: coco has no segmentation masks.")
    return config


def load_config(path: str | Path) -> StudyConfig:
    """Read a study file (``.json``, or ``.toml`` on Python 3.11+); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study config {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ValueError(f"study config {path} must end in .json or .toml.")
    text = path.read_text(encoding="utf-8")
    if suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            raise ValueError(f"{path}: TOML study files need Python 3.11+; use JSON.") from None
    try:
        data = json.loads(text) if suffix == ".json" else tomllib.loads(text)
    except ValueError as error:  # json.JSONDecodeError and tomllib.TOMLDecodeError
        raise ValueError(f"cannot parse {path}: {error}") from None
    try:
        return study_config(data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
