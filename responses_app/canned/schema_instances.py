"""A deterministic, minimal instance of a JSON schema: arguments for a forced tool call, or the text of
a structured-output answer, when no canned entry says otherwise; and what a request that forces a tool
or a schema gets instead of an entry's reply that does not give it."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from responses_app.canned.conversation import ChatRequest, Reply, ToolCall

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
        count = int(schema.get("minItems", 0) or 0)
        return [minimal_instance(schema.get("items", {}), root, depth + 1) for _ in range(count)]
    if kind == "string":
        if schema.get("format") in FORMATS:
            return FORMATS[schema["format"]]
        return "x" * int(schema.get("minLength", 0) or 0)
    if kind in ("integer", "number"):
        value: float = 0
        if "minimum" in schema:
            value = schema["minimum"]
        elif "exclusiveMinimum" in schema and not isinstance(schema["exclusiveMinimum"], bool):
            value = schema["exclusiveMinimum"] + 1
        if "maximum" in schema and value > schema["maximum"]:
            value = schema["maximum"]
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return False
    return None


def _resolve(ref: Any, root: Any) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return {}
    node = root
    for part in ref[2:].split("/"):
        if not isinstance(node, dict):
            return {}
        node = node.get(part.replace("~1", "/").replace("~0", "~"), {})
    return node


def forced_call(request: ChatRequest) -> ToolCall:
    """A call to the tool the request forces, its arguments a minimal instance of the tool's schema."""
    tool = next((t for t in request.tools if t.name == request.forced_tool), None)
    arguments = minimal_instance(tool.schema) if tool else {}
    if not isinstance(arguments, dict):
        arguments = {}
    return ToolCall(request.forced_tool or "", json.dumps(arguments))


def schema_text(request: ChatRequest) -> str:
    """JSON text that the request's structured-output schema (or JSON mode) accepts."""
    return json.dumps(minimal_instance(request.json_schema)) if request.json_schema is not None else "{}"


def forced_reply(request: ChatRequest) -> tuple[Reply, str] | None:
    """The reply (and its rule) of a request that forces a tool or a JSON schema, when no entry answers it."""
    if request.forced_tool:
        return Reply(text=None, tool_calls=(forced_call(request),)), "forced_tool"
    if request.json_schema is not None or request.json_mode:
        return Reply(text=schema_text(request)), "json_schema"
    return None


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def honour_forcing(request: ChatRequest, reply: Reply) -> tuple[Reply, str | None]:
    """A matched entry's reply, or, when the request forces a tool or a JSON schema that the reply does not
    give, what the real APIs would never fail to send: the forced tool call, or JSON the schema accepts.
    The second value says what was overridden and why."""
    if request.forced_tool:
        wanted = {tool.name for tool in request.tools} if request.any_tool else {request.forced_tool}
        if any(call.name in wanted for call in reply.tool_calls):
            return reply, None
        forced = "a call to one of its tools" if request.any_tool else f"a call to the tool {request.forced_tool!r}"
        call = forced_call(request)
        return (dataclasses.replace(reply, text=None, tool_calls=(call,), finish_reason=None, stop_reason=None),
                f"the request forces {forced} and the entry's reply has none: answered with a call to {call.name!r} "
                "built from its schema instead of the entry's reply")
    if (request.json_schema is not None or request.json_mode) and reply.text is not None and not _is_json(reply.text):
        forced = "a JSON schema" if request.json_schema is not None else "JSON output"
        return (dataclasses.replace(reply, text=schema_text(request)),
                f"the request forces {forced} and the entry's text is not JSON: answered with a minimal instance "
                "of the schema instead of the entry's text")
    return reply, None
