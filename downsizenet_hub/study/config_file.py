"""Reading a study file (JSON or TOML) into a :class:`~.config.StudyConfig`, field by field.

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
    baselines = ["bilinear", "area", "talebi"]   # fixed ones; learned ones pretrain longest
    publish = "me/downsizenet-x0.3"   # optional: publish the first seed's longest-trained resizer
    # or a table naming learned resizers: publish = {downsizenet = "me/a", talebi = "me/b"}

Every field is checked on reading, and an error names the field (``experiments[1].scales``) and
what was expected. Bilinear is always added as the baseline every difference is measured against.

(Just over 300 lines because of this description of the format; the field reader is
:mod:`.config_fields`.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from downsizenet_hub.data import DATASETS
from downsizenet_hub.data.composition import (
    DEFAULT_FAMILY,
    DEFAULT_LAYOUT,
    SCENE_FAMILIES,
    SCENE_LAYOUTS,
)
from downsizenet_hub.data.transforms import VARIANTS
from downsizenet_hub.jsonfile import loads_json, read_regular_bytes
from downsizenet_hub.pipelines.detection import HEADS
from downsizenet_hub.pipelines.segmentation import BACKBONES
from downsizenet_hub.registry import TRAINABLE
from downsizenet_hub.study.config import (
    BASELINE,
    EXPERIMENT_KINDS,
    DataSettings,
    Experiment,
    PretrainSettings,
    ResizerSpec,
    SegmentationExperiment,
    StudyConfig,
    TransferExperiment,
    TransferSettings,
    resizer_spec,
)
from downsizenet_hub.study.config_fields import Table, integer, missing, number, show, unique
from downsizenet_hub.study.config_limits import (
    MAX_FILE_BYTES,
    MAX_SEEDS,
    check_study_size,
)


def _data(value: object, where: str) -> DataSettings:
    table = Table(value, where, [f.name for f in fields(DataSettings)])
    name = table.string("name", "scenes", DATASETS)
    size = table.items("image_size", None)
    image_size = None
    if size is not None:
        if len(size) != 2:
            raise ValueError(f"{table.path('image_size')} must be [height, width], got {size}.")
        image_size = (
            integer(size[0], table.path("image_size"), 8),
            integer(size[1], table.path("image_size"), 8),
        )
    return DataSettings(
        name=name or "scenes",
        root=table.string("root", None),
        image_size=image_size,
        train_images=table.integer("train_images", None, 2),
        val_images=table.integer("val_images", None, 1),
        scenes_seed=table.integer("scenes_seed", 0) or 0,
        items=table.string("items", DEFAULT_LAYOUT, SCENE_LAYOUTS) or DEFAULT_LAYOUT,
        family=table.string("family", DEFAULT_FAMILY, SCENE_FAMILIES) or DEFAULT_FAMILY,
        variant=table.string("variant", None, VARIANTS),
    )


def _pretrain(value: object, where: str) -> PretrainSettings:
    table = Table(value, where, [f.name for f in fields(PretrainSettings)])
    return PretrainSettings(
        data=_data(table.get("data", {}), table.path("data")),
        backbone=table.string("backbone", "tiny", BACKBONES) or "tiny",
        width=table.integer("width", 32, 4) or 32,
        epochs=table.integer("epochs", 3, 1) or 3,
        batch_size=table.integer("batch_size", 8, 2) or 8,
        lr=table.number("lr", 2e-3, 0.0, 10.0),
    )


def _transfer(value: object, where: str) -> TransferSettings:
    table = Table(value, where, [f.name for f in fields(TransferSettings)])
    data = _data(table.get("data", {}), table.path("data"))
    if data.name == "cityscapes":
        raise ValueError(f"{table.path('data.name')}: cityscapes has no detection labels.")
    return TransferSettings(
        data=data,
        backbone_weights=table.string("backbone_weights", "auto") or "auto",
        head=table.string("head", "centernet", HEADS) or "centernet",
        epochs=table.integer("epochs", 10, 1) or 10,
        batch_size=table.integer("batch_size", 8, 2) or 8,
        lr=table.number("lr", 2e-3, 0.0, 10.0),
    )


def _variants(table: Table, key: str, default: Iterable[str] | None) -> tuple[str, ...] | None:
    values = table.items(key, default)
    if values is None:
        return None
    for value in values:
        if value not in VARIANTS:
            raise ValueError(f"{table.path(key)} must list {list(VARIANTS)}, got {value!r}.")
    return unique(values, table.path(key))


def _scale(value: object, where: str) -> float:
    return number(value, where, 0.0, 1.0)


def _data_over(base: DataSettings, value: object, where: str) -> DataSettings:
    """``base`` with the fields ``value`` (a table) gives changed: an experiment's own data."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{where} must be a table (JSON object), got {show(value)}.")
    merged = {k: v for k, v in asdict(base).items() if v is not None}
    return _data({**merged, **value}, where)


def _own_data(table: Table, key: str, base: DataSettings) -> DataSettings | None:
    value = table.get(key)
    return None if value is None else _data_over(base, value, table.path(key))


def _experiment(value: object, where: str, bases: Mapping[str, DataSettings]) -> Experiment:
    if not isinstance(value, Mapping):
        raise TypeError(f"{where} must be a table (JSON object), got {show(value)}.")
    kind = value.get("kind")
    if kind == "segmentation":
        return _segmentation_experiment(value, where)
    if kind == "transfer":
        return _transfer_experiment(value, where, bases)
    raise ValueError(f"{where}.kind must be one of {list(EXPERIMENT_KINDS)}, got {kind!r}.")


def _segmentation_experiment(value: Mapping[str, Any], where: str) -> SegmentationExperiment:
    table = Table(
        value, where, ("kind", "title", "resizers", "scales", "variants", "epochs", "data")
    )
    resizers = [
        resizer_spec(r, f"{table.path('resizers')}[{i}]")
        for i, r in enumerate(table.items("resizers", None) or [])
    ]
    if not resizers:
        raise ValueError(f"{table.path('resizers')} is required: the resizers to compare.")
    labels = [r.label for r in resizers]
    unique(labels, table.path("resizers"))
    scales = table.items("scales", [0.3]) or [0.3]
    data = table.get("data")
    return SegmentationExperiment(
        title=table.string("title", None) or missing(table, "title"),
        resizers=tuple(resizers),
        scales=unique(
            [_scale(s, f"{table.path('scales')}[{i}]") for i, s in enumerate(scales)],
            table.path("scales"),
        ),
        variants=_variants(table, "variants", None),
        epochs=table.integer("epochs", None, 1),
        data=None if data is None else _data(data, table.path("data")),
    )


def _transfer_experiment(
    value: Mapping[str, Any], where: str, bases: Mapping[str, DataSettings]
) -> TransferExperiment:
    table = Table(
        value,
        where,
        ("kind", "title", "resizer", "pretrain_epochs", "baselines", "scale", "variants",
         "publish", "pretrain_data", "transfer_data"),
    )  # fmt: skip
    resizer = resizer_spec(table.get("resizer", TRAINABLE), table.path("resizer"))
    if not resizer.learned:
        raise ValueError(
            f"{table.path('resizer')} must be a learned resizer to pretrain "
            "(downsizenet, talebi or strided), not a fixed one."
        )
    epochs = table.items("pretrain_epochs", [3]) or [3]
    baselines = [
        resizer_spec(value, f"{table.path('baselines')}[{i}]")
        for i, value in enumerate(table.items("baselines", [BASELINE]) or [BASELINE])
    ]
    unique([b.label for b in [resizer, *baselines]], table.path("baselines"))
    publish = _publications(
        table.get("publish", None), table.path("publish"), [resizer, *baselines]
    )
    return TransferExperiment(
        title=table.string("title", None) or missing(table, "title"),
        resizer=resizer,
        pretrain_epochs=tuple(
            sorted(
                unique(
                    [
                        integer(e, f"{table.path('pretrain_epochs')}[{i}]", 1)
                        for i, e in enumerate(epochs)
                    ],
                    table.path("pretrain_epochs"),
                )
            )
        ),
        baselines=tuple(baselines),
        scale=_scale(table.get("scale", 0.3), table.path("scale")),
        variants=_variants(table, "variants", None),
        publish=publish,
        **{
            key: None
            if table.get(key) is None
            else _data_over(base, table.get(key), table.path(key))
            for key, base in bases.items()
        },
    )


def _publications(
    value: object, where: str, resizers: list[ResizerSpec]
) -> tuple[tuple[str, str], ...]:
    """``publish``: a name (the experiment's resizer) or a table ``{label: name}`` naming learned
    resizers of the experiment."""
    from downsizenet_hub.hub import validate_name

    if value is None:
        return ()
    pairs = [(resizers[0].label, value)] if isinstance(value, str) else value
    if not isinstance(pairs, (list, Mapping)):
        raise TypeError(f"{where} must be a hub name or a table {{label = name}}, got {value!r}.")
    items = list(pairs.items()) if isinstance(pairs, Mapping) else pairs
    learned = [r.label for r in resizers if r.learned]
    out = []
    for label, name in items:
        if label not in learned:
            raise ValueError(f"{where}: {label!r} is not a learned resizer here; one of {learned}.")
        if not isinstance(name, str):
            raise TypeError(f"{where}.{label} must be a hub name string, got {name!r}.")
        try:
            validate_name(name)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
        out.append((label, name))
    unique([name for _, name in out], where)
    return tuple(out)


def study_config(data: object, where: str = "") -> StudyConfig:
    """Build and check a :class:`StudyConfig` from parsed JSON/TOML (``where`` prefixes errors)."""
    top = (
        "name", "description", "seeds", "variants", "grid_images", "pretrain", "transfer",
        "experiments",
    )  # fmt: skip
    table = Table(data, where, top)
    name = table.string("name", None) or missing(table, "name")
    if "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"{table.path('name')} must be a plain folder name, got {name!r}.")
    seed_values = table.items("seeds", [0, 1, 2]) or []
    if len(seed_values) > MAX_SEEDS:
        raise ValueError(
            f"{table.path('seeds')} lists {len(seed_values)} seeds; at most {MAX_SEEDS}."
        )
    seeds = unique(
        [integer(s, f"{table.path('seeds')}[{i}]", 0) for i, s in enumerate(seed_values)],
        table.path("seeds"),
    )
    pretrain = _pretrain(table.get("pretrain", {}), table.path("pretrain"))
    transfer = _transfer(table.get("transfer", {}), table.path("transfer"))
    bases = {"pretrain_data": pretrain.data, "transfer_data": transfer.data}
    experiments = [
        _experiment(e, f"{table.path('experiments')}[{i}]", bases)
        for i, e in enumerate(table.items("experiments", None) or [])
    ]
    if not experiments:
        raise ValueError(f"{table.path('experiments')} is required: at least one experiment.")
    unique([e.title for e in experiments], f"{table.path('experiments')} titles")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise TypeError(f"{table.path('description')} must be a string.")
    config = StudyConfig(
        name=name,
        seeds=seeds,
        variants=_variants(table, "variants", ["noisy"]) or ("noisy",),
        pretrain=pretrain,
        transfer=transfer,
        experiments=tuple(experiments),
        grid_images=table.integer("grid_images", 2, 0) or 0,
        description=description,
    )
    if config.pretrain.data.name == "coco":
        raise ValueError(f"{table.path('pretrain.data.name')}: coco has no segmentation masks.")
    check_study_size(config, where or "the study")
    return config


def load_config(path: str | Path) -> StudyConfig:
    """Read a study file (``.json``, or ``.toml`` on Python 3.11+); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study config {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ValueError(f"study config {path} must end in .json or .toml.")
    try:  # a regular file only (a FIFO would block), bounded, UTF-8
        raw = read_regular_bytes(path, MAX_FILE_BYTES + 1, what="study config")
        if len(raw) > MAX_FILE_BYTES:
            raise ValueError(f"study config {path} is larger than {MAX_FILE_BYTES // 2**20} MiB.")
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"study config {path} is not UTF-8 text ({error.reason} at byte {error.start})."
        ) from None
    if suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            raise ValueError(f"{path}: TOML study files need Python 3.11+; use JSON.") from None
    try:
        data = (
            loads_json(text, source="the file")  # bounded nesting: no RecursionError
            if suffix == ".json"
            else tomllib.loads(text)
        )
    except ValueError as error:  # jsonfile's errors and tomllib.TOMLDecodeError
        raise ValueError(f"cannot parse {path}: {error}") from None
    except RecursionError:  # tomllib recurses once per nested array or table
        raise ValueError(f"cannot parse {path}: arrays or tables nested too deeply.") from None
    try:
        return study_config(data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
