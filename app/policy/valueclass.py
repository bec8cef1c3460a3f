"""The one decorator of Tact's domain values. Left out of compilation (see setup.py): the
typing marker it carries cannot be set on a compiled function."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

_V = TypeVar("_V")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def value(cls: type[_V]) -> type[_V]:
    """An immutable value class. mypy rejects any assignment to its fields; the check is not
    repeated at run time, where a frozen dataclass costs a third of the core's time to build."""
    return dataclass(slots=True, unsafe_hash=True)(cls)
