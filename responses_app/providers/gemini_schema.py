"""Gemini's `Schema` (function parameters, `responseSchema`) read as the JSON schema that
canned/schema_instances.py makes minimal instances of."""
from __future__ import annotations

from typing import Any

# Proto JSON takes a field's snake_case name too, and google-genai sends some nested schemas so.
SCHEMA_KEYS = {"any_of": "anyOf", "min_items": "minItems", "max_items": "maxItems", "min_length": "minLength",
               "max_length": "maxLength", "min_properties": "minProperties", "max_properties": "maxProperties",
               "property_ordering": "propertyOrdering", "additional_properties": "additionalProperties"}
SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "defs")
SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def openapi_to_json_schema(schema: Any) -> Any:
    """Gemini's `Schema` (OpenAPI's subset, with upper-case types such as "OBJECT", `nullable`, int64 counts
    as strings, snake_case names) as the JSON schema the schema-instance code reads; a JSON schema passes
    through unchanged."""
    if not isinstance(schema, dict):
        return schema
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        key = SCHEMA_KEYS.get(key, key)
        if key in SUBSCHEMA_MAPS and isinstance(value, dict):
            value = {name: openapi_to_json_schema(sub) for name, sub in value.items()}
        elif key in SUBSCHEMA_LISTS and isinstance(value, list):
            value = [openapi_to_json_schema(sub) for sub in value]
        elif key in ("items", "additionalProperties", "not"):
            value = openapi_to_json_schema(value)
        elif isinstance(value, str) and value.isdigit() and key.startswith(("min", "max")):
            value = int(value)  # int64 fields arrive as strings
        converted[key] = value
    kind = converted.get("type")
    if isinstance(kind, str):
        converted["type"] = kind.lower()
        if kind.upper() == "TYPE_UNSPECIFIED":
            del converted["type"]
    return converted
