"""The shape of an upstream answer, and what changed between two: what `manage.py driftcheck` reports.

A shape is what a client's parsing depends on: the fields present (as paths, list positions folded),
the event types of a stream in their order (a run of the same type counted once), the tool names
called and the finish reasons. Values that always differ (ids, timestamps, text, token counts) are not
part of it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from responses_app.canned.recordings import parse_events

FINISH_KEYS = ("finish_reason", "stop_reason")


@dataclass(frozen=True)
class Shape:
    status: int
    fields: frozenset[str]
    events: tuple[str, ...]
    tools: tuple[str, ...]
    finishes: tuple[str, ...]


def _walk(value: Any, path: str, fields: set[str], tools: list[str], finishes: list[str]) -> None:
    if isinstance(value, dict):
        if isinstance(value.get("function"), dict) and value["function"].get("name"):
            tools.append(value["function"]["name"])
        if value.get("type") in ("tool_use", "function_call") and value.get("name"):
            tools.append(value["name"])
        for key in FINISH_KEYS:
            if value.get(key):
                finishes.append(str(value[key]))
        if value.get("object") == "response" and value.get("status"):
            finishes.append(str(value["status"]))
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            fields.add(child)
            _walk(item, child, fields, tools, finishes)
    elif isinstance(value, list):
        for item in value:
            _walk(item, path + "[]", fields, tools, finishes)


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def shape_of(status: int, body: str, streamed: bool) -> Shape:
    """The shape of an answer: its status and JSON body, or its stream's events."""
    fields: set[str] = set()
    tools: list[str] = []
    finishes: list[str] = []
    events: list[str] = []
    if streamed:
        for event in parse_events(body):
            data = event.json()
            kind = "[DONE]" if event.data.strip() == "[DONE]" else event.name or (data or {}).get("type") or \
                (data or {}).get("object") or "data"
            if not events or events[-1] != kind:
                events.append(kind)
            if data is not None:
                _walk(data, kind, fields, tools, finishes)
    else:
        try:
            _walk(json.loads(body), "", fields, tools, finishes)
        except ValueError:
            fields.add("(not JSON)")
    return Shape(status, frozenset(fields), tuple(events), _unique(tools), _unique(finishes))


def differences(recorded: Shape, now: Shape) -> list[str]:
    """What changed from the recorded shape to today's, one line each; [] when nothing did."""
    changes = []
    if recorded.status != now.status:
        changes.append(f"status: {recorded.status} -> {now.status}")
    gone, added = sorted(recorded.fields - now.fields), sorted(now.fields - recorded.fields)
    if gone:
        changes.append("fields gone: " + ", ".join(gone[:20]) + (" ..." if len(gone) > 20 else ""))
    if added:
        changes.append("fields added: " + ", ".join(added[:20]) + (" ..." if len(added) > 20 else ""))
    if recorded.events != now.events:
        changes.append(f"events: {' '.join(recorded.events) or '(none)'} -> {' '.join(now.events) or '(none)'}")
    if recorded.tools != now.tools:
        changes.append(f"tools called: {', '.join(recorded.tools) or '(none)'} -> {', '.join(now.tools) or '(none)'}")
    if recorded.finishes != now.finishes:
        changes.append(f"finish reasons: {', '.join(recorded.finishes) or '(none)'} -> "
                       f"{', '.join(now.finishes) or '(none)'}")
    return changes
