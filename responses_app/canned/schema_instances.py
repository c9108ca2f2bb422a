"""A deterministic, minimal instance of a JSON schema: arguments for a forced tool call, or the text of
a structured-output answer, when no canned entry says otherwise."""
from __future__ import annotations

from typing import Any

MAX_DEPTH = 16
FORMATS = {
    "date-time": "2024-01-01T00:00:00Z", "date": "2024-01-01", "time": "00:00:00", "email": "user@example.com",
    "uri": "https://example.com", "url": "https://example.com", "uuid": "00000000-0000-0000-0000-000000000000",
    "hostname": "example.com", "ipv4": "127.0.0.1", "ipv6": "::1",
}


def minimal_instance(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """The smallest value that `schema` accepts, chosen the same way every time.

    Objects get their required properties (all of them when none are listed as required but the
    schema is strict), strings their enum's first value or a format example, numbers their minimum.
    """
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return None
    if "$ref" in schema:
        return minimal_instance(_resolve(schema["$ref"], root), root, depth + 1)
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            options = [s for s in schema[key] if not (isinstance(s, dict) and s.get("type") == "null")]
            return minimal_instance((options or schema[key])[0], root, depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = minimal_instance(part, root, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        properties = schema.get("properties") or {}
        required = schema.get("required")
        names = required if isinstance(required, list) else (list(properties) if schema.get("strict") else [])
        return {name: minimal_instance(properties.get(name, {}), root, depth + 1) for name in names}
    if kind == "array":
        count = _number(schema.get("minItems"))
        return [minimal_instance(schema.get("items", {}), root, depth + 1) for _ in range(count)]
    if kind == "string":
        if schema.get("format") in FORMATS:
            return FORMATS[schema["format"]]
        return "x" * _number(schema.get("minLength"))
    if kind in ("integer", "number"):
        value: float = 0
        if _is_number(schema.get("minimum")):
            value = schema["minimum"]
        elif _is_number(schema.get("exclusiveMinimum")):
            value = schema["exclusiveMinimum"] + 1
        if _is_number(schema.get("maximum")) and value > schema["maximum"]:
            value = schema["maximum"]
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return False
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any) -> int:
    """A count such as `minItems` (at most 1000): Gemini's schemas send int64 fields as strings; anything else
    counts as 0."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return min(int(value), 1000) if _is_number(value) and value > 0 else 0


def _resolve(ref: Any, root: Any) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return {}
    node = root
    for part in ref[2:].split("/"):
        if not isinstance(node, dict):
            return {}
        node = node.get(part.replace("~1", "/").replace("~0", "~"), {})
    return node
