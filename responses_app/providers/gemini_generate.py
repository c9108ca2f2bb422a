"""The Gemini API's generateContent wire format (Google AI and Vertex AI alike): request, response body,
stream chunks, error body, and :countTokens.

The model is in the URL, not the body, so the view passes it to `parse`, with whether the route streams
(`:streamGenerateContent`). With `?alt=sse` (what google-genai and the Vercel AI SDK send) a stream is
SSE `data:` records of the same object, no `[DONE]`; without it, one JSON array of them: `ARRAY_STREAM`
is this provider with that framing.
"""
from __future__ import annotations

import hashlib
import json
import types
from collections.abc import Iterator
from typing import Any

from responses_app.canned.conversation import ChatRequest, Reply, Tool
from responses_app.canned.matching import Match
from responses_app.canned.tokens import count_all, tool_texts
from responses_app.providers.chunking import split_text
from responses_app.providers.common import ResponseIds, dumps, invalid, json_type, make_ids
from responses_app.providers.gemini_schema import openapi_to_json_schema

NAME = "gemini"
ENDPOINT = "generate_content"
ROLES = ("user", "model", "function")  # "function": the role earlier clients gave function responses
MAX_CANDIDATES = 8
# Google's canonical status names (google.rpc.Code) for the HTTP statuses this server answers.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    405: "INVALID_ARGUMENT", 408: "DEADLINE_EXCEEDED", 409: "ABORTED", 412: "FAILED_PRECONDITION",
    413: "INVALID_ARGUMENT", 415: "INVALID_ARGUMENT", 422: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED", 529: "UNAVAILABLE",
}
FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
SEPARATOR = b"\r\n\r\n"  # between SSE records, as Google's servers send them


def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise invalid(f"Invalid value at '{where}': expected an object, got {json_type(value)}.", where)
    return value


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise invalid(f"Invalid value at '{where}': expected an array, got {json_type(value)}.", where)
    return value


def _parts(content: Any, where: str, found: dict[str, bool]) -> tuple[list[str], list[str]]:
    """(the text of a Content's text parts, every countable text in it)."""
    content = _object(content, where)
    texts, counted = [], []
    for i, part in enumerate(_list(content.get("parts", []), f"{where}.parts")):
        at = f"{where}.parts[{i}]"
        part = _object(part, at)
        if "text" in part:
            if not isinstance(part["text"], str):
                raise invalid(f"Invalid value at '{at}.text': expected a string, got {json_type(part['text'])}.",
                              f"{at}.text")
            counted.append(part["text"])
            if not part.get("thought"):
                texts.append(part["text"])
        elif "functionCall" in part:
            call = _object(part["functionCall"], f"{at}.functionCall")
            if not isinstance(call.get("name"), str):
                raise invalid(f"'{at}.functionCall.name' is required and must be a string.", f"{at}.functionCall.name")
            counted.extend((call["name"], json.dumps(call.get("args", {}), sort_keys=True)))
        elif "functionResponse" in part:
            response = _object(part["functionResponse"], f"{at}.functionResponse")
            found["tool_result"] = True
            counted.extend((str(response.get("name", "")), json.dumps(response.get("response", {}), sort_keys=True)))
        elif "inlineData" in part:
            blob = _object(part["inlineData"], f"{at}.inlineData")
            if not isinstance(blob.get("mimeType"), str) or not isinstance(blob.get("data"), str):
                raise invalid(f"'{at}.inlineData' needs a string `mimeType` and base64 `data`.", f"{at}.inlineData")
    return texts, counted


def _tools(data: dict) -> tuple[Tool, ...]:
    tools = data.get("tools")
    if tools is None:
        return ()
    found = []
    for i, tool in enumerate(_list(tools, "tools")):
        tool = _object(tool, f"tools[{i}]")
        declarations = tool.get("functionDeclarations") or tool.get("function_declarations") or []
        for j, declaration in enumerate(_list(declarations, f"tools[{i}].functionDeclarations")):
            at = f"tools[{i}].functionDeclarations[{j}]"
            declaration = _object(declaration, at)
            if not isinstance(declaration.get("name"), str) or not declaration["name"]:
                raise invalid(f"'{at}.name' is required and must be a non-empty string.", f"{at}.name")
            schema = declaration.get("parametersJsonSchema", declaration.get("parameters"))
            found.append(Tool(declaration["name"], openapi_to_json_schema(schema) if isinstance(schema, dict) else {}))
    return tuple(found)


def _forcing(data: dict, tools: tuple[Tool, ...]) -> tuple[str | None, bool]:
    """The tool `toolConfig.functionCallingConfig` insists on: mode ANY, with one allowed name or any of them."""
    config = data.get("toolConfig")
    calling = config.get("functionCallingConfig") if isinstance(config, dict) else None
    if not isinstance(calling, dict) or str(calling.get("mode", "")).upper() != "ANY" or not tools:
        return None, False
    allowed = [name for name in calling.get("allowedFunctionNames") or [] if isinstance(name, str)]
    if len(allowed) == 1:
        return allowed[0], False
    return (allowed[0] if allowed else tools[0].name), True


def _structured(config: dict) -> tuple[dict | None, bool]:
    """(JSON schema, JSON mode) asked for by `generationConfig`."""
    if str(config.get("responseMimeType", "")).lower() != "application/json":
        return None, False
    for key in ("responseJsonSchema", "responseSchema", "response_json_schema", "response_schema"):
        if isinstance(config.get(key), dict):
            return openapi_to_json_schema(config[key]), False
    return None, True


def parse(data: dict, *, model: str = "", stream: bool = False, endpoint: str = ENDPOINT) -> ChatRequest:
    """Validate a generateContent body; raise APIError(400) naming the first bad field."""
    if "contents" not in data:
        raise invalid("* GenerateContentRequest.contents: contents is not specified", "contents")
    contents = _list(data["contents"], "contents")
    if not contents and endpoint == ENDPOINT:
        raise invalid("* GenerateContentRequest.contents: contents is not specified", "contents")
    found: dict[str, bool] = {}
    counted: list[str] = []
    system_texts: list[str] = []
    system = data.get("systemInstruction", data.get("system_instruction"))
    if isinstance(system, str):
        system_texts, system_counted = [system], [system]
    elif system is not None:
        system_texts, system_counted = _parts(system, "systemInstruction", found)
    else:
        system_counted = []
    counted.extend(system_counted)
    prompt, user_texts, conversation, model_turns = "", [], list(system_texts), 0
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        role = _object(content, where).get("role") or "user"  # left out (or empty), a content is the user's
        if role not in ROLES:
            raise invalid(f"Please use a valid role: user, model. Got {role!r} at '{where}.role'.", f"{where}.role")
        texts, content_counted = _parts(content, where, found)
        counted.extend(content_counted)
        text = "\n".join(texts)
        conversation.append(text)
        if role == "model":
            model_turns += 1
        elif role == "user":
            user_texts.append(text)
            if text:
                prompt = text
    tools = _tools(data)
    forced, any_tool = _forcing(data, tools)
    config = data.get("generationConfig", {})
    config = _object(config if config is not None else {}, "generationConfig")
    candidates = config.get("candidateCount", 1)
    if isinstance(candidates, bool) or not isinstance(candidates, int) or not 1 <= candidates <= MAX_CANDIDATES:
        raise invalid(f"Invalid value at 'generationConfig.candidateCount': must be an integer from 1 to "
                      f"{MAX_CANDIDATES}; got {candidates!r}.", "generationConfig.candidateCount")
    maximum = config.get("maxOutputTokens")
    if maximum is not None and (isinstance(maximum, bool) or not isinstance(maximum, int) or maximum < 1):
        raise invalid("Invalid value at 'generationConfig.maxOutputTokens': must be a positive integer.",
                      "generationConfig.maxOutputTokens")
    schema, json_mode = _structured(config)
    if schema is not None:
        counted.append(json.dumps(schema, sort_keys=True))
    thinking = config.get("thinkingConfig", config.get("thinking_config"))
    return ChatRequest(
        provider=NAME, endpoint=endpoint, model=model, prompt=prompt, user_texts=tuple(user_texts),
        system="\n".join(system_texts), conversation="\n".join(conversation), tools=tools, forced_tool=forced,
        any_tool=any_tool, has_tool_result=found.get("tool_result", False), turn=model_turns + 1, stream=stream,
        n=candidates, input_tokens=count_all(counted + tool_texts(tools)), json_schema=schema, json_mode=json_mode,
        thinking=isinstance(thinking, dict) and True in (thinking.get("includeThoughts"), thinking.get("include_thoughts")),
    )


def new_ids() -> ResponseIds:
    return make_ids("", 22)


def finish_reason(reply: Reply) -> str:
    return FINISH_REASONS.get(reply.openai_finish(), "STOP")


def call_id(response_id: str, index: int) -> str:
    """A function call's id when the entry fixes none: new with each answer, the same within it."""
    return hashlib.sha256(f"{response_id}/{index}".encode()).hexdigest()[:16]


def _response_id(reply: Reply, ids: ResponseIds) -> str:
    return reply.response_id or ids.response_id


def _call_parts(reply: Reply, response_id: str) -> list[dict]:
    return [{"functionCall": {"id": call.id or call_id(response_id, index), "name": call.name,
                              "args": json.loads(call.arguments)}}
            for index, call in enumerate(reply.tool_calls)]


def _thought_parts(request: ChatRequest, reply: Reply) -> list[dict]:
    return [{"text": reply.thinking or "", "thought": True}] if request.thinking and reply.thinking else []


def usage(request: ChatRequest, match: Match) -> dict:
    prompt_tokens = match.reply.usage.get("input_tokens", request.input_tokens)
    output = match.reply.usage.get("output_tokens", match.output_tokens * request.n)
    return {"promptTokenCount": prompt_tokens, "candidatesTokenCount": output, "totalTokenCount": prompt_tokens + output,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]}


def render_json(request: ChatRequest, match: Match, ids: ResponseIds) -> bytes:
    """The non-streamed GenerateContentResponse."""
    reply = match.reply
    response_id = _response_id(reply, ids)
    parts = _thought_parts(request, reply)
    if reply.text or not reply.tool_calls:
        parts.append({"text": reply.text or ""})
    parts.extend(_call_parts(reply, response_id))
    finish = finish_reason(reply)
    return dumps({
        "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": finish, "index": i}
                       for i in range(request.n)],
        "usageMetadata": usage(request, match),
        "modelVersion": request.model,
        "responseId": response_id,
    })


def _chunks(request: ChatRequest, match: Match, ids: ResponseIds, chunk: Any, opening: bytes, separator: bytes,
            closing: bytes) -> Iterator[bytes]:
    """Each streamed GenerateContentResponse, framed: the first after `opening`, the others after `separator`,
    each followed by `closing`. A text piece per chunk (one character, or `chunk`); the last chunk carries
    the function calls, the finish reason and the usage. Text chunks are built from pre-encoded pieces."""
    reply = match.reply
    response_id = _response_id(reply, ids)
    tail = b'],"modelVersion":' + dumps(request.model) + b',"responseId":' + dumps(response_id) + b"}" + closing
    lead = opening
    thoughts = _thought_parts(request, reply)
    if thoughts:
        yield lead + b'{"candidates":[' + b",".join(
            dumps({"content": {"parts": thoughts, "role": "model"}, "index": i}) for i in range(request.n)) + tail
        lead = separator
    pieces = split_text(reply.text, chunk) if reply.text else []
    if pieces[:-1]:
        head = b'{"content":{"parts":[{"text":'
        ends = [b'}],"role":"model"},"index":' + str(i).encode() + b"}" for i in range(request.n)]
        if request.n == 1:
            first, end = b'{"candidates":[' + head, ends[0] + tail
            yield lead + first + dumps(pieces[0]) + end
            lead = separator
            separated_first = separator + first
            for piece in pieces[1:-1]:
                yield separated_first + dumps(piece) + end
        else:  # the same piece for every candidate
            for piece in pieces[:-1]:
                text = dumps(piece)
                yield lead + b'{"candidates":[' + b",".join(head + text + end for end in ends) + tail
                lead = separator
    last: list[dict] = [{"text": pieces[-1]}] if pieces else []
    last.extend(_call_parts(reply, response_id))
    if not last:
        last.append({"text": ""})
    finish = finish_reason(reply)
    yield lead + dumps({
        "candidates": [{"content": {"parts": last, "role": "model"}, "finishReason": finish, "index": i}
                       for i in range(request.n)],
        "usageMetadata": usage(request, match),
        "modelVersion": request.model,
        "responseId": response_id,
    }) + closing


def render_stream(request: ChatRequest, match: Match, ids: ResponseIds, chunk: Any = "char") -> Iterator[bytes]:
    """`?alt=sse`: each chunk one `data:` record; the stream just ends (no [DONE])."""
    return _chunks(request, match, ids, chunk, b"data: ", b"data: ", SEPARATOR)


def render_array_stream(request: ChatRequest, match: Match, ids: ResponseIds, chunk: Any = "char") -> Iterator[bytes]:
    """Without `?alt=sse`: one JSON array whose elements are the chunks, sent as they are made."""
    yield from _chunks(request, match, ids, chunk, b"[", b",\r\n", b"")
    yield b"]"


def parse_count(data: dict, *, model: str = "") -> ChatRequest:
    """A :countTokens body: `contents` (and, on Vertex AI, the rest of a generateContent body), or a
    whole `generateContentRequest`."""
    inner = data.get("generateContentRequest")
    if inner is not None:
        return parse(_object(inner, "generateContentRequest"), model=model, endpoint="count_tokens")
    return parse(data, model=model, endpoint="count_tokens")


def count(request: ChatRequest) -> bytes:
    """The CountTokensResponse: the same count as `usageMetadata.promptTokenCount`."""
    return dumps({"totalTokens": request.input_tokens,
                  "promptTokensDetails": [{"modality": "TEXT", "tokenCount": request.input_tokens}]})


def render_error(status: int, message: str, *, param: str | None = None, code: str | None = None,
                 error_type: str | None = None, request_id: str | None = None, details: dict | None = None) -> dict:
    """Google's error shape: the HTTP status as `code`, its canonical name as `status`; a bad field is
    named in a BadRequest detail, as Google's servers do."""
    body: dict[str, Any] = {"code": status, "message": message,
                            "status": error_type or STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "UNKNOWN")}
    if param:
        body["details"] = [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                            "fieldViolations": [{"field": param, "description": message}]}]
    return {"error": body}


def render_stream_error(message: str) -> bytes:
    """A mid-stream error record: google-genai raises its APIError (ServerError) for a chunk that is an `error`."""
    return b"data: " + dumps(render_error(500, message)) + SEPARATOR


def render_array_stream_error(message: str) -> bytes:
    return b",\r\n" + dumps(render_error(500, message)) + b"]"


# This wire format with the framing of a stream asked for without `?alt=sse`: a JSON array.
ARRAY_STREAM = types.SimpleNamespace(
    NAME=NAME, ENDPOINT=ENDPOINT, STREAM_CONTENT_TYPE="application/json; charset=UTF-8", parse=parse,
    new_ids=new_ids, render_json=render_json, render_stream=render_array_stream, render_error=render_error,
    render_stream_error=render_array_stream_error, parse_count=parse_count, count=count,
)
