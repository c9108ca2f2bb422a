"""Entries of a responses file that can never answer, because an earlier one answers all they would:
the loader warns about them."""
from __future__ import annotations

from responses_app.canned.matching import Entry


def shadows(earlier: Entry, later: Entry) -> bool:
    """True when `earlier`, tried first, answers every request `later` would answer."""
    if earlier.target != later.target:
        return False
    for mine, theirs in ((earlier.model, later.model), (earlier.provider, later.provider), (earlier.tool, later.tool),
                         (earlier.has_tool_result, later.has_tool_result)):
        if mine is not None and mine != theirs:
            return False
    if later.kind in ("exact", "normalized"):
        if later.kind == "normalized" and earlier.kind == "exact":
            return False
        return earlier.matches_text(later.prompt)
    if later.kind == "contains":
        return earlier.kind == "contains" and earlier.key in later.key
    return False


def find_shadowed(entries: list[Entry]) -> list[tuple[Entry, Entry]]:
    """(later, earlier) pairs where `later` can never match because `earlier` is tried first."""
    broad: list[Entry] = []
    by_key: dict[str, list[Entry]] = {}
    pairs = []
    for entry in sorted(entries, key=lambda e: e.rank):
        rivals = broad + by_key.get(entry.key, [])
        shadow = next((earlier for earlier in rivals if shadows(earlier, entry)), None)
        if shadow is not None:
            pairs.append((entry, shadow))
        if entry.kind in ("contains", "regex", "normalized"):
            broad.append(entry)
        by_key.setdefault(entry.key, []).append(entry)
    return pairs
