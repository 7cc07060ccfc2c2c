"""What a study cell is: one training run for one seed, and its key.

A *cell* is a segmentation pretraining (``downsizenet pretrain`` with one resizer) or a transfer
(``downsizenet transfer``: a frozen resizer in front of the frozen VGG16 detector; the resizer is
fixed, or the one a segmentation cell trained). Its *key* is a readable prefix plus a hash of its
settings (:meth:`Cell.spec`), so a finished cell can be found again and a changed setting never
reuses a stale one; the code that computed it is named by the numerics version stored beside it
(:mod:`.numerics`), not by the key.

A setting added to any part of a spec after cells were computed (a data, training or resizer
option) is declared with ``metadata=KEYED_WHEN_SET``: it enters the spec only when it differs
from its default, so every cell that uses the default keeps its key and its result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, fields, is_dataclass
from functools import cached_property
from typing import Any, Literal

from downsizenet_hub.engine import TrainConfig
from downsizenet_hub.resizing.config import DownsizeNetConfig
from downsizenet_hub.study.config import (
    ARCHITECTURES,
    DataSettings,
    PretrainSettings,
    ResizerSpec,
    TransferSettings,
    learned_config,  # and plugin_entry: plugin resizers
    plugin_entry,
)

#: The layout of a cell's spec and result (not the numerics: see :mod:`.numerics`).
CELL_FORMAT = "downsizenet-study-cell/1"
#: Field metadata of a setting added after cells were computed: in a cell's spec only when set.
#: The resizing core spells it out (``{"cell_key": "when-set"}``) as it imports nothing of ours.
KEYED_WHEN_SET: dict[str, str] = {"cell_key": "when-set"}
Task = Literal["segmentation", "transfer"]
#: The score each task's tables lead with, and the others reported beside it.
PRIMARY_METRIC: dict[str, str] = {"segmentation": "miou", "transfer": "map_50"}
METRICS: dict[str, tuple[str, ...]] = {
    "segmentation": ("miou", "pixel_accuracy"),
    "transfer": ("map_50", "map"),
}
#: How each task is named where a reader sees it (cards, cost tables).
#: How a scene family is named where the families are compared.
FAMILY_NAMES = {"all": "all scenes", "A": "family A", "B": "family B"}
TASK_NAMES = {"segmentation": "segmentation", "transfer": "detection (frozen transfer)"}
METRIC_NAMES = {
    "miou": "mIoU",
    "pixel_accuracy": "pixel accuracy",
    "map_50": "mAP@0.5",
    "map": "mAP@[.5:.95]",
}


def count_epochs(count: int, unit: str = "epoch") -> str:
    """``"1 epoch"``, ``"3 epochs"``."""
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


@dataclass(frozen=True)
class Cell:
    """One run for one seed. ``epochs``: pretraining epochs (segmentation) or the head budget
    (transfer); ``source``: the segmentation cell whose trained resizer a transfer loads."""

    task: Task
    resizer: ResizerSpec
    variant: str
    scale: float
    epochs: int
    seed: int
    data: DataSettings
    settings: PretrainSettings | TransferSettings
    source: Cell | None = None

    def train_config(self, device: str = "auto") -> TrainConfig:
        """The engine settings of this cell's run; evaluated once, after the last epoch (the
        tables report final scores only)."""
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.settings.batch_size,
            lr=self.settings.lr,
            seed=self.seed,
            device=device,
            eval_every=self.epochs,
        )

    def spec(self) -> dict[str, Any]:
        """Everything that decides the result, as JSON-able data (stored in the cell's JSON).

        Engine and DownsizeNet defaults are spelled out, so that a changed default makes new
        cells instead of reusing results computed under the old one.
        """
        settings = {k: v for k, v in keyed(self.settings).items() if k != "data"}
        settings.pop("epochs", None)  # the cell's own epochs count, not the default
        train_config = self.train_config()
        train = keyed(train_config, train_config.to_dict())
        for neutral in ("device", "log_every"):  # where it runs and how often it logs
            train.pop(neutral)
        resizer = None
        if self.resizer.is_downsizenet:
            downsizenet = DownsizeNetConfig(**self.resizer.config)
            resizer = keyed(downsizenet, downsizenet.to_dict())
        elif self.resizer.learned:
            config = learned_config(self.resizer.architecture, self.resizer.config)
            built_in = ARCHITECTURES.get(self.resizer.architecture)
            if built_in is not None:  # a field added later enters only when set
                config = keyed(built_in(**self.resizer.config), config)
            resizer = {"architecture": self.resizer.architecture, **config}
        return json.loads(
            json.dumps(
                {
                    "format": CELL_FORMAT,
                    "task": self.task,
                    "resizer": self.resizer.label,
                    "resizer_config": resizer,
                    "variant": self.variant,
                    "scale": self.scale,
                    "epochs": self.epochs,
                    "seed": self.seed,
                    "data": keyed(self.data),
                    "settings": settings,
                    "train": train,
                    "source": self.source.key if self.source is not None else None,
                    **plugin_entry(self.resizer),  # {} unless a plugin's resizer: keys unchanged
                },
                sort_keys=True,
            )
        )

    @cached_property
    def key(self) -> str:
        """Stable and readable, e.g. ``seg-noisy-x0.3-downsizenet-e3-s0-1a2b3c4d``."""
        digest = hashlib.sha256(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()
        task = "seg" if self.task == "segmentation" else "det"
        pretrained = f"-pre{self.source.epochs}" if self.source is not None else ""
        label = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.resizer.label)
        return (
            f"{task}-{self.variant}{self.family_tag}-x{self.scale:g}-{label}{pretrained}"
            f"-e{self.epochs}-s{self.seed}-{digest[:8]}"
        )

    @property
    def scenes(self) -> tuple[str, str]:
        """(family, variant) of the data this cell trains or detects on."""
        return getattr(self.data, "family", "all"), self.variant

    @property
    def family_tag(self) -> str:
        """``-famA`` for scenes of one family, ``""`` for all of them (keys made before)."""
        family = self.scenes[0]
        return "" if family == "all" else f"-fam{family}"

    def describe(self) -> str:
        """One line for progress output: task, resizer, variant, scale, epochs."""
        scenes = f"{self.variant}{self.family_tag.replace('-fam', ' family ')}"
        if self.task == "segmentation":
            return (
                f"segmentation  {self.resizer.label} {scenes} x{self.scale:g}, "
                f"{count_epochs(self.epochs)}"
            )
        origin = (
            f"{self.resizer.label} pretrained {count_epochs(self.source.epochs)}"
            if self.source is not None
            else self.resizer.label
        )
        heads = count_epochs(self.epochs, "head epoch")
        return f"transfer  {origin} {scenes} x{self.scale:g}, {heads}"


def keyed(settings: Any, as_dict: dict[str, Any] | None = None) -> dict[str, Any]:
    """``settings`` (a dataclass) as its part of a cell spec: ``as_dict`` (default
    ``asdict(settings)``) without the fields marked :data:`KEYED_WHEN_SET` that hold their
    default, nested settings likewise."""
    data = dict(asdict(settings) if as_dict is None else as_dict)
    for item in fields(settings):
        value = getattr(settings, item.name)
        if item.metadata.get("cell_key") == KEYED_WHEN_SET["cell_key"]:
            factory = item.default_factory
            default = item.default if factory is MISSING else factory()
            if value == default:
                data.pop(item.name, None)
                continue
        if (
            is_dataclass(value)
            and not isinstance(value, type)
            and isinstance(data.get(item.name), dict)
        ):
            data[item.name] = keyed(value, data[item.name])
    return data
