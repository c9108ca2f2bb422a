"""The small checks every part of an entry's schema shares: where a value stands in the file, its plain
value, and the error that names the field."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Scalar:
    """A YAML scalar: the text as written, the value YAML reads it as, and where it stands."""

    raw: str
    value: Any
    line: int


class EntryError(ValueError):
    def __init__(self, field: str, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.line = line


def line_of(value: Any) -> int:
    return value.line if isinstance(value, Scalar) else 0


def plain(value: Any) -> Any:
    """Unwrap Scalars into the values YAML reads them as."""
    if isinstance(value, Scalar):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def text(value: Any, field: str, *, allow_empty: bool = True) -> str:
    """A string field, as the user wrote it (`yes` stays "yes")."""
    if isinstance(value, Scalar):
        if value.value is None and value.raw in ("", "~", "null", "Null", "NULL"):
            raise EntryError(field, f"`{field}` is empty; write \"\" for an empty text", value.line)
        return value.raw
    if isinstance(value, str):
        return value
    if value is None:
        raise EntryError(field, f"`{field}` is missing")
    if isinstance(value, (int, float, bool)) and not isinstance(value, bool):
        return str(value)
    raise EntryError(field, f"`{field}` must be a string, not {type(value).__name__}")


def mapping(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        raise EntryError(field, f"`{field}` must be a mapping", line_of(value))
    return value


def choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    chosen = text(value, field)
    if chosen not in choices:
        raise EntryError(field, f"`{field}` must be one of {', '.join(choices)}; got {chosen!r}", line_of(value))
    return chosen


def integer(value: Any, field: str) -> int:
    number = plain(value)
    if isinstance(number, bool) or not isinstance(number, int):
        raise EntryError(field, f"`{field}` must be a whole number", line_of(value))
    return number


def unknown_keys(values: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in values:
        if key not in allowed:
            raise EntryError(f"{where}.{key}" if where else key,
                             f"unknown field `{key}`{' in ' + where if where else ''} (expected one of: {', '.join(allowed)})")
