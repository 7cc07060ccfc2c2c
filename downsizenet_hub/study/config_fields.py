"""The field reader of study files: a table read field by field, every value checked and every error
naming the field's path (``experiments[1].scales``) and what was expected."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

__all__ = ["Table", "integer", "missing", "number", "show", "unique"]


class Table:
    """One table of a study file, read field by field; every error names the field's path."""

    def __init__(self, data: object, where: str, allowed: Iterable[str]) -> None:
        if not isinstance(data, Mapping):
            raise TypeError(f"{where} must be a table (JSON object), got {show(data)}.")
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
            raise TypeError(f"{self.path(key)} must be a non-empty string, got {show(value)}.")
        choices = tuple(choices)
        if choices and value not in choices:
            raise ValueError(f"{self.path(key)} must be one of {list(choices)}, got {value!r}.")
        return value

    def integer(self, key: str, default: int | None, minimum: int = 0) -> int | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        return integer(value, self.path(key), minimum)

    def number(self, key: str, default: float, low: float, high: float) -> float:
        return number(self.data.get(key, default), self.path(key), low, high)

    def items(self, key: str, default: Iterable[Any] | None) -> list[Any] | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise TypeError(f"{self.path(key)} must be a list, got {show(value)}.")
        values = list(value)
        if not values:
            raise ValueError(f"{self.path(key)} must not be empty.")
        return values


def show(value: object) -> str:
    return (
        repr(value)
        if isinstance(value, (str, int, float, bool, type(None)))
        else type(value).__name__
    )


#: The largest integer a study file may give anywhere (seeds are 32-bit for the engine).
MAX_INTEGER = 2**32 - 1


def integer(value: object, where: str, minimum: int, maximum: int = MAX_INTEGER) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        shown = show(value) if len(str(value)) <= 40 else f"an integer of {len(str(value))} digits"
        raise ValueError(f"{where} must be an integer from {minimum} to {maximum}, got {shown}.")
    return value


def number(value: object, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where} must be a number, got {show(value)}.")
    try:
        converted = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise ValueError(
            f"{where} must be in ({low:g}, {high:g}], got a number too large."
        ) from None
    if not (math.isfinite(converted) and low < converted <= high):
        raise ValueError(f"{where} must be in ({low:g}, {high:g}], got {value!r}.")
    return converted


def unique(values: list[Any], where: str) -> tuple[Any, ...]:
    if len(set(values)) != len(values):
        raise ValueError(f"{where} lists a value twice: {values}.")
    return tuple(values)


def missing(table: Table, key: str) -> NoReturn:
    raise ValueError(f"{table.path(key)} is required.")
