"""Across seeds: mean, sample standard deviation and a Student-t confidence interval.

Conventions: the standard deviation is the sample one (``ddof=1``); the interval for the mean is
``mean +- t(1 - alpha/2, n - 1) * std / sqrt(n)`` with the t quantile from SciPy. Differences to
the baseline are *paired by seed* (the same seed gives both arms the same initialisation and data
order), so their interval is the one-sample interval of the per-seed differences, narrower than
comparing two independent means whenever the seeds move both arms together. With one seed there
is no spread: ``std`` and the interval are None, never a made-up zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` seeds with its spread; ``values`` in seed order."""

    n: int
    mean: float
    std: float | None
    ci_low: float | None
    ci_high: float | None
    values: tuple[float, ...]
    confidence: float = CONFIDENCE

    @property
    def half_width(self) -> float | None:
        return None if self.ci_high is None else self.ci_high - self.mean

    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely above or below zero (for differences)."""
        return (
            self.ci_low is not None
            and self.ci_high is not None
            and (self.ci_low > 0 or self.ci_high < 0)
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "values": list(self.values)}


def t_quantile(probability: float, dof: int) -> float:
    """The ``probability`` quantile of Student's t with ``dof`` degrees of freedom."""
    if dof < 1:
        raise ValueError(f"a t quantile needs at least 1 degree of freedom, got {dof}.")
    return float(stats.t.ppf(probability, dof))


def estimate(values: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """Mean, sample std and the ``confidence`` t-interval of ``values`` (one per seed).

    Example:
        >>> e = estimate([1.0, 2.0, 3.0])
        >>> e.mean, e.std, round(e.ci_low, 4), round(e.ci_high, 4)
        (2.0, 1.0, -0.4841, 4.4841)
    """
    if not values:
        raise ValueError("cannot estimate from no values.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    data = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in data):
        raise ValueError(f"values must be finite, got {data}.")
    n = len(data)
    mean = math.fsum(data) / n
    if n == 1:
        return Estimate(1, mean, None, None, None, data, confidence)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in data) / (n - 1))
    half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return Estimate(n, mean, std, mean - half, mean + half, data, confidence)


def paired_difference(
    values: Mapping[int, float], baseline: Mapping[int, float], confidence: float = CONFIDENCE
) -> Estimate | None:
    """The estimate of ``values[seed] - baseline[seed]`` over the seeds both have (None if none)."""
    seeds = sorted(set(values) & set(baseline))
    if not seeds:
        return None
    return estimate([values[s] - baseline[s] for s in seeds], confidence)


def format_estimate(value: Estimate | None, *, signed: bool = False, digits: int = 2) -> str:
    """``"12.34 ± 0.56 [11.80, 12.88]"`` (``"12.34 (n=1)"`` for one seed; ``"-"`` for None)."""
    if value is None:
        return "-"
    sign = "+" if signed else ""
    text = f"{value.mean:{sign}.{digits}f}"
    if value.std is None:
        return f"{text} (n=1)"
    return (
        f"{text} ± {value.std:.{digits}f} "
        f"[{value.ci_low:{sign}.{digits}f}, {value.ci_high:{sign}.{digits}f}]"
    )
