"""What a request that forces a tool or a JSON schema gets: the real APIs never answer such a request
with plain text, and the structured-output helpers of the client libraries fail, or silently give
nothing, when they get it. Used by the index (matching.py) for matched entries and for the default."""
from __future__ import annotations

import dataclasses
import json

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
