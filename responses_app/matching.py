"""Choosing the canned answer for a prompt: an immutable index built once per change of the set.

Lookups are dictionary probes, so their cost does not grow with the number of entries.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .tokens import count_tokens


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    prompt: str
    answer: str
    answer_tokens: int


@dataclass(frozen=True, slots=True)
class Match:
    entry: Entry | None  # None when the default answer was used
    answer: str
    answer_tokens: int
    rule: str  # "exact", "trimmed", "lowercase" or "default"


@dataclass(frozen=True)
class ResponseIndex:
    """Every canned entry, keyed the ways a prompt may match it, plus the default answer."""

    version: int
    unknown_response: str
    settings: dict[str, Any]
    entries: tuple[Entry, ...]
    _exact: dict[str, Entry] = field(repr=False, default_factory=dict)
    _trimmed: dict[str, Entry] = field(repr=False, default_factory=dict)
    _lowered: dict[str, Entry] = field(repr=False, default_factory=dict)
    _default: Match | None = field(repr=False, default=None)

    @classmethod
    def build(
        cls, rows: Iterable[tuple[int, str, str]], *, version: int, unknown_response: str, settings: dict[str, Any]
    ) -> "ResponseIndex":
        entries = tuple(Entry(id, prompt, answer, count_tokens(answer)) for id, prompt, answer in rows)
        exact: dict[str, Entry] = {}
        trimmed: dict[str, Entry] = {}
        lowered: dict[str, Entry] = {}
        for entry in entries:
            exact[entry.prompt] = entry
            trimmed.setdefault(entry.prompt.strip(), entry)
        # The original server lower-cased the prompt and looked it up as written, so a key written in
        # lower case answers any capitalisation of it. Prefer such keys; then any other key, case-folded.
        for entry in entries:
            key = entry.prompt.strip()
            if key == key.lower():
                lowered.setdefault(key, entry)
        for entry in entries:
            lowered.setdefault(entry.prompt.strip().lower(), entry)
        default = Match(None, unknown_response, count_tokens(unknown_response), "default")
        return cls(version, unknown_response, settings, entries, exact, trimmed, lowered, default)

    def find(self, prompt: str) -> Match:
        """The answer for `prompt`: exact text first, then trimmed, then lower-cased; else the default."""
        entry = self._exact.get(prompt)
        if entry is not None:
            return Match(entry, entry.answer, entry.answer_tokens, "exact")
        key = prompt.strip()
        entry = self._trimmed.get(key)
        if entry is not None:
            return Match(entry, entry.answer, entry.answer_tokens, "trimmed")
        entry = self._lowered.get(key.lower())
        if entry is not None:
            return Match(entry, entry.answer, entry.answer_tokens, "lowercase")
        assert self._default is not None
        return self._default

    def __len__(self) -> int:
        return len(self.entries)
