"""What a request that forces a tool or a JSON schema gets: the real APIs never answer such a request
with plain text, and the structured-output helpers of the client libraries fail, or silently give
nothing, when they get it. Used by the index (matching.py) for matched entries and for the default."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from responses_app.canned.conversation import ChatRequest, Reply, ToolCall
from responses_app.canned.schema_instances import minimal_instance


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


def default_reply(request: ChatRequest, unknown_response: str) -> tuple[Reply, str]:
    """What to answer when no entry matches: a call to a forced tool, schema-valid JSON, or the default text."""
    if request.forced_tool:
        return Reply(text=None, tool_calls=(forced_call(request),)), "forced_tool"
    if request.json_schema is not None or request.json_mode:
        return Reply(text=schema_text(request)), "json_schema"
    return Reply(text=unknown_response), "default"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _json_object(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _fits(schema: Any, arguments: dict[str, Any]) -> bool:
    """Whether an object could be a tool's arguments: it has the schema's required properties and none
    that the schema does not name (when it names any). Types are not checked."""
    if not isinstance(schema, dict):
        return True
    required = schema.get("required")
    if isinstance(required, list) and any(name not in arguments for name in required):
        return False
    properties = schema.get("properties")
    return not (isinstance(properties, dict) and properties and any(name not in properties for name in arguments))


def honour_forcing(request: ChatRequest, reply: Reply) -> tuple[Reply, str | None]:
    """A matched entry's reply, or, when the request forces a tool or a JSON schema that the reply does not
    give, what the real APIs would never fail to send: the forced tool call, or JSON the schema accepts.
    An entry whose text is a JSON object that fits the forced tool's schema answers with a call whose
    arguments are that object, as the libraries that force a tool to get structured output expect. The
    second value says what was overridden and why (None when the entry's reply, or its JSON, was used)."""
    if request.forced_tool:
        wanted = {tool.name for tool in request.tools} if request.any_tool else {request.forced_tool}
        if any(call.name in wanted for call in reply.tool_calls):
            return reply, None
        arguments = _json_object(reply.text)
        if arguments is not None:
            tool = next((t for t in request.tools if t.name in wanted and _fits(t.schema, arguments)), None)
            if tool is not None:
                call = ToolCall(tool.name, json.dumps(arguments))
                return dataclasses.replace(reply, text=None, tool_calls=(call,), finish_reason=None, stop_reason=None), None
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
