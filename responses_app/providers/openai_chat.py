"""The OpenAI chat completions wire format: request, response body, stream chunks, error body."""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

from responses_app.canned.conversation import ChatRequest, Reply, Tool
from responses_app.canned.matching import Match
from responses_app.canned.tokens import count_all, tool_texts
from responses_app.providers.chunking import json_pieces
from responses_app.providers.common import (
    ResponseIds,
    dumps,
    invalid,
    json_type,
    make_ids,
    optional_bool,
    optional_int,
    require_list,
    require_str,
)
from responses_app.providers.common import parse_tools as common_parse_tools

NAME = "openai"
ENDPOINT = "chat"
SYSTEM_FINGERPRINT = "fp_mockllm"
ROLES = ("developer", "system", "user", "assistant", "tool", "function")
MAX_N = 128  # choices a request may ask for
ARGUMENT_PIECE = 16  # characters of tool-call arguments per streamed fragment
ERROR_TYPES = {
    400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_denied",
    404: "invalid_request_error", 405: "invalid_request_error", 408: "timeout", 409: "conflict",
    413: "invalid_request_error", 415: "invalid_request_error", 422: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def content_texts(content: Any, param: str, *, allow_null: bool) -> list[str]:
    """The text pieces of a message's content (a string or an array of parts)."""
    if content is None:
        if allow_null:
            return []
        raise invalid(f"`{param}` is required.", param)
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise invalid(f"`{param}` must be a string or an array of content parts, not {json_type(content)}.", param)
    texts = []
    for i, part in enumerate(content):
        where = f"{param}[{i}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise invalid(f"`{where}` must be an object with a string `type`.", where)
        if part["type"] in ("text", "refusal", "input_text", "output_text"):
            key = "refusal" if part["type"] == "refusal" else "text"
            if not isinstance(part.get(key), str):
                raise invalid(f"`{where}.{key}` must be a string.", f"{where}.{key}")
            texts.append(part[key])
    return texts


def read_tool(tool: dict) -> tuple[Any, Any] | None:
    """A chat tool `{"function": {"name", "parameters"}}`, or the flat form of custom and Responses tools."""
    function = tool.get("function")
    if isinstance(function, dict):
        return function.get("name"), function.get("parameters")
    return (tool["name"], tool.get("parameters")) if "name" in tool else None


def parse_tools(data: dict) -> tuple[Tool, ...]:
    return common_parse_tools(data, read_tool, "tools[{i}]")


def forced_tool(choice: Any, tools: tuple[Tool, ...]) -> str | None:
    """The tool a `tool_choice` insists on: one named function, or the first tool when `required`."""
    if isinstance(choice, dict):
        function = choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return function["name"]
        if isinstance(choice.get("name"), str):  # the Responses API's flat form
            return choice["name"]
    if choice == "required" and tools:
        return tools[0].name
    return None


def structured_output(response_format: Any) -> tuple[dict | None, bool]:
    """(JSON schema, JSON mode) asked for by `response_format`."""
    if not isinstance(response_format, dict):
        return None, False
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return (schema if isinstance(schema, dict) else {"type": "object"}), False
    return None, response_format.get("type") == "json_object"


def parse(data: dict) -> ChatRequest:
    """Validate a chat completions body; raise APIError(400) naming the first bad field."""
    model = require_str(data, "model")
    messages = require_list(data, "messages")
    counted: list[str] = []
    prompt, user_texts, system, conversation = "", [], [], []
    assistant_turns, has_tool_result = 0, False
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise invalid(f"`{where}` must be an object, not {json_type(message)}.", where)
        role = message.get("role")
        if role not in ROLES:
            raise invalid(f"`{where}.role` must be one of {', '.join(ROLES)}; got {role!r}.", f"{where}.role")
        texts = content_texts(message.get("content"), f"{where}.content", allow_null=role in ("assistant", "function"))
        text = "\n".join(texts)
        counted.extend(texts)
        conversation.append(text)
        tool_calls = message.get("tool_calls")
        if tool_calls is not None:
            if not isinstance(tool_calls, list):
                raise invalid(f"`{where}.tool_calls` must be an array.", f"{where}.tool_calls")
            for j, call in enumerate(tool_calls):
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict):
                    raise invalid(f"`{where}.tool_calls[{j}].function` must be an object.", f"{where}.tool_calls[{j}]")
                counted.extend(v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str))
        if role == "user":
            user_texts.append(text)
            if text:
                prompt = text
        elif role in ("system", "developer"):
            system.append(text)
        elif role == "assistant":
            assistant_turns += 1
        else:
            has_tool_result = True
    stream = optional_bool(data, "stream")
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise invalid("`stream_options` must be an object.", "stream_options")
    optional_int(data, "max_tokens", minimum=1)
    optional_int(data, "max_completion_tokens", minimum=1)
    tools = parse_tools(data)
    schema, json_mode = structured_output(data.get("response_format"))
    return ChatRequest(
        provider=NAME, endpoint="chat", model=model, prompt=prompt, user_texts=tuple(user_texts),
        system="\n".join(system), conversation="\n".join(conversation), tools=tools,
        forced_tool=forced_tool(data.get("tool_choice"), tools), any_tool=data.get("tool_choice") == "required",
        has_tool_result=has_tool_result, turn=assistant_turns + 1, stream=stream, n=optional_int(data, "n", minimum=1, maximum=MAX_N) or 1,
        include_usage=optional_bool(options or {}, "include_usage", "stream_options.include_usage"),
        input_tokens=count_all(counted + tool_texts(tools)), json_schema=schema, json_mode=json_mode,
    )


def usage(request: ChatRequest, match: Match) -> dict:
    prompt_tokens = match.reply.usage.get("input_tokens", request.input_tokens)
    completion = match.reply.usage.get("output_tokens", match.output_tokens * request.n)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
        },
    }


def new_ids() -> ResponseIds:
    return make_ids("chatcmpl-")


def call_ids(reply: Reply) -> list[str]:
    return [call.id or "call_" + secrets.token_hex(12) for call in reply.tool_calls]


def effective_ids(reply: Reply, ids: ResponseIds) -> ResponseIds:
    """A script may fix the id and timestamp, for snapshot tests."""
    if reply.response_id is None and reply.created is None:
        return ids
    return ResponseIds(reply.response_id or ids.response_id, reply.created or ids.created)


def render_json(request: ChatRequest, match: Match, ids: ResponseIds) -> bytes:
    """The non-streamed chat.completion body."""
    reply = match.reply
    ids = effective_ids(reply, ids)
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None, "annotations": []}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call_id, call in zip(call_ids(reply), reply.tool_calls, strict=True)
        ]
    finish = reply.openai_finish()
    return dumps({
        "id": ids.response_id,
        "object": "chat.completion",
        "created": ids.created,
        "model": request.model,
        "choices": [
            {"index": i, "message": message, "logprobs": None, "finish_reason": finish} for i in range(request.n)
        ],
        "usage": usage(request, match),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    })


def render_stream(request: ChatRequest, match: Match, ids: ResponseIds, chunk: Any = "char", *,
                  open_annotation: bytes = b"", finish_annotation: bytes = b"") -> Iterator[bytes]:
    """The SSE events of a streamed answer: one chunk per character (or `chunk`) of text, tool-call arguments in
    fragments that each carry the call's `index`; every chunk a complete `data:` event. The annotations are
    fields a format built on this one (Azure's) adds to each choice, before its `logprobs`."""
    reply = match.reply
    ids = effective_ids(reply, ids)
    head = (
        b'data: {"id":' + dumps(ids.response_id) + b',"object":"chat.completion.chunk","created":'
        + str(ids.created).encode() + b',"model":' + dumps(request.model)
        + b',"system_fingerprint":"' + SYSTEM_FINGERPRINT.encode() + b'","choices":['
    )
    tail = b'],"usage":null}\n\n' if request.include_usage else b"]}\n\n"
    pending = open_annotation + b',"logprobs":null,"finish_reason":null}'
    choices = [b'{"index":' + str(i).encode() for i in range(request.n)]
    first_content = b'""' if reply.text is not None else b"null"
    for choice in choices:
        yield head + choice + b',"delta":{"role":"assistant","content":' + first_content + b',"refusal":null}' + pending + tail
    if reply.text:
        content_heads = [head + choice + b',"delta":{"content":' for choice in choices]
        content_tail = b"}" + pending + tail
        for piece in json_pieces(reply.text, chunk):
            for content_head in content_heads:
                yield content_head + piece + content_tail
    if reply.tool_calls:
        identifiers = call_ids(reply)
        for choice in choices:
            for index, (call_id, call) in enumerate(zip(identifiers, reply.tool_calls, strict=True)):
                start = {"index": index, "id": call_id, "type": "function",
                         "function": {"name": call.name, "arguments": ""}}
                yield head + choice + b',"delta":{"tool_calls":[' + dumps(start) + b"]}" + pending + tail
                for at in range(0, len(call.arguments), ARGUMENT_PIECE):
                    fragment = {"index": index, "function": {"arguments": call.arguments[at:at + ARGUMENT_PIECE]}}
                    yield head + choice + b',"delta":{"tool_calls":[' + dumps(fragment) + b"]}" + pending + tail
    finish = dumps(reply.openai_finish())
    for choice in choices:
        yield head + choice + b',"delta":{}' + finish_annotation + b',"logprobs":null,"finish_reason":' + finish + b"}" + tail
    if request.include_usage:
        yield head + b'],"usage":' + dumps(usage(request, match)) + b"}\n\n"
    yield b"data: [DONE]\n\n"


def render_error(status: int, message: str, *, param: str | None = None, code: str | None = None,
               error_type: str | None = None, request_id: str | None = None, details: dict | None = None) -> dict:
    return {
        "error": {
            "message": message,
            "type": error_type or ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


def render_stream_error(message: str, *, error_type: str | None = None) -> bytes:
    """A mid-stream error: the SDK raises openai.APIError on any chunk with an `error` key."""
    return b"data: " + dumps(render_error(500, message, error_type=error_type)) + b"\n\n"
