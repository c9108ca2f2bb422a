"""Bedrock Runtime's Converse wire format (POST /model/{modelId}/converse and /converse-stream), as
boto3's `bedrock-runtime` client sends and parses it (botocore/data/bedrock-runtime/*/service-2.json).

The request: `messages` of content blocks (`text`, `toolUse`, `toolResult`, `reasoningContent`, and
media blocks, which are accepted and not read), `system`, `inferenceConfig`, `toolConfig` (a
`toolChoice` of `tool` or `any` forces a call), `outputConfig.textFormat` (a JSON schema) and
`additionalModelRequestFields.thinking` (Claude's extended thinking). The answer: `output.message`,
`stopReason`, `usage` and `metrics`; streamed, the event-stream messages `messageStart`,
`contentBlockStart` (tool use only, as the service sends it), `contentBlockDelta`, `contentBlockStop`,
`messageStop` and `metadata`. Errors are bedrock_errors.py's.
"""
from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

from responses_app.canned.conversation import ChatRequest, Reply, Tool
from responses_app.canned.matching import Match
from responses_app.canned.tokens import count_all, tool_texts
from responses_app.providers import event_stream
from responses_app.providers.anthropic_messages import DEFAULT_THINKING, signature
from responses_app.providers.bedrock_errors import MALFORMED_EVENT, error_headers, render_error, render_stream_error
from responses_app.providers.chunking import json_pieces, worth_remembering
from responses_app.providers.common import APIError, ResponseIds, dumps, json_type, make_ids

NAME = "bedrock"
ENDPOINT = "converse"
STREAM_CONTENT_TYPE = event_stream.CONTENT_TYPE
ARGUMENT_PIECE = 16  # characters of tool input JSON per toolUse delta
STOP_REASONS = {"refusal": "content_filtered", "pause_turn": "end_turn"}  # Anthropic names Converse lacks
MEDIA_BLOCKS = ("image", "document", "video", "audio", "guardContent", "cachePoint", "citationsContent",
                "searchResult", "toolAddition", "toolRemoval")
MESSAGE_START = event_stream.event("messageStart", b'{"role":"assistant"}')

__all__ = ["MALFORMED_EVENT", "error_headers", "render_error", "render_stream_error"]


def invalid(where: str, constraint: str) -> APIError:
    """A ValidationException worded as the service words them."""
    return APIError(400, f"1 validation error detected: Value at '{where}' failed to satisfy constraint: {constraint}",
                    param=where)


def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise invalid(where, f"Member must be an object, not {json_type(value)}")
    return value


def _list(value: Any, where: str, *, required: bool = True) -> list:
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise invalid(where, "Member must not be null" if value is None else f"Member must be a list, not {json_type(value)}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise invalid(where, "Member must not be null" if value is None else f"Member must be a string, not {json_type(value)}")
    return value


def _union(block: Any, where: str, members: tuple[str, ...]) -> tuple[str, Any]:
    """The one member set in a union (a content block, a tool, a tool choice)."""
    block = _object(block, where)
    if len(block) != 1 or next(iter(block)) not in members:
        raise invalid(where, f"Member must have exactly one of: {', '.join(members)}")
    return next(iter(block.items()))


def _block_texts(blocks: list, where: str, found: dict[str, bool]) -> tuple[list[str], list[str]]:
    """The countable texts of a message's content blocks, and the texts of its `text` blocks."""
    counted: list[str] = []
    texts: list[str] = []
    kinds = ("text", "toolUse", "toolResult", "reasoningContent", *MEDIA_BLOCKS)
    for i, block in enumerate(blocks):
        at = f"{where}.{i + 1}.member"
        kind, value = _union(block, at, kinds)
        if kind == "text":
            texts.append(_string(value, f"{at}.text"))
            counted.append(value)
        elif kind == "toolUse":
            use = _object(value, f"{at}.toolUse")
            counted.append(_string(use.get("name"), f"{at}.toolUse.name"))
            _string(use.get("toolUseId"), f"{at}.toolUse.toolUseId")
            counted.append(dumps(use.get("input", {})).decode())
        elif kind == "toolResult":
            result = _object(value, f"{at}.toolResult")
            _string(result.get("toolUseId"), f"{at}.toolResult.toolUseId")
            found["tool_result"] = True
            for j, part in enumerate(_list(result.get("content"), f"{at}.toolResult.content")):
                part_at = f"{at}.toolResult.content.{j + 1}.member"
                part_kind, part_value = _union(part, part_at, ("text", "json", "image", "document", "video", "searchResult"))
                if part_kind == "text":
                    counted.append(_string(part_value, f"{part_at}.text"))
                elif part_kind == "json":
                    counted.append(dumps(part_value).decode())
        elif kind == "reasoningContent":
            reasoning = _object(value, f"{at}.reasoningContent")
            text = reasoning.get("reasoningText")
            if isinstance(text, dict) and isinstance(text.get("text"), str):
                counted.append(text["text"])
    return counted, texts


def _tools(config: dict) -> tuple[tuple[Tool, ...], str | None, bool]:
    """The tools of a `toolConfig`, the tool its `toolChoice` forces, and whether any tool is forced."""
    tools: list[Tool] = []
    for i, tool in enumerate(_list(config.get("tools"), "toolConfig.tools")):
        at = f"toolConfig.tools.{i + 1}.member"
        kind, spec = _union(tool, at, ("toolSpec", "systemTool", "cachePoint"))
        if kind != "toolSpec":
            continue
        spec = _object(spec, f"{at}.toolSpec")
        name = _string(spec.get("name"), f"{at}.toolSpec.name")
        schema = _object(spec.get("inputSchema"), f"{at}.toolSpec.inputSchema").get("json")
        tools.append(Tool(name, schema if isinstance(schema, dict) else {}))
    choice = config.get("toolChoice")
    if choice is None:
        return tuple(tools), None, False
    kind, value = _union(choice, "toolConfig.toolChoice", ("auto", "any", "tool"))
    if kind == "tool":
        name = _string(_object(value, "toolConfig.toolChoice.tool").get("name"), "toolConfig.toolChoice.tool.name")
        if all(tool.name != name for tool in tools):
            raise invalid("toolConfig.toolChoice.tool.name", "Member must name one of the tools in toolConfig.tools")
        return tuple(tools), name, False
    if kind == "any" and tools:
        return tuple(tools), tools[0].name, True
    return tuple(tools), None, False


def _inference(config: Any) -> None:
    config = _object(config, "inferenceConfig")
    max_tokens = config.get("maxTokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise invalid("inferenceConfig.maxTokens", "Member must have value greater than or equal to 1")
    for key in ("temperature", "topP"):
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1):
            raise invalid(f"inferenceConfig.{key}", "Member must be a number from 0 to 1")
    for i, stop in enumerate(_list(config.get("stopSequences"), "inferenceConfig.stopSequences", required=False)):
        _string(stop, f"inferenceConfig.stopSequences.{i + 1}.member")


def _output_schema(data: dict) -> dict | None:
    """The JSON schema of `outputConfig.textFormat` (its `structure.jsonSchema.schema` is JSON text)."""
    config = data.get("outputConfig")
    text_format = config.get("textFormat") if isinstance(config, dict) else None
    if not isinstance(text_format, dict):
        return None
    structure = text_format.get("structure")
    spec = structure.get("jsonSchema") if isinstance(structure, dict) else None
    schema_text = spec.get("schema") if isinstance(spec, dict) else None
    where = "outputConfig.textFormat.structure.jsonSchema.schema"
    try:
        schema = json.loads(_string(schema_text, where))
    except ValueError:
        raise invalid(where, "Member must be a JSON schema") from None
    return schema if isinstance(schema, dict) else {"type": "object"}


def parse(data: dict, *, model_id: str = "", stream: bool = False) -> ChatRequest:
    """Validate a Converse body for the model of the URL; raise APIError(400) naming the first bad field."""
    messages = _list(data.get("messages"), "messages")
    if not messages:
        raise invalid("messages", "Member must have length greater than or equal to 1")
    found: dict[str, bool] = {}
    system_texts: list[str] = []
    for i, block in enumerate(_list(data.get("system"), "system", required=False)):
        kind, value = _union(block, f"system.{i + 1}.member", ("text", "guardContent", "cachePoint"))
        if kind == "text":
            system_texts.append(_string(value, f"system.{i + 1}.member.text"))
    counted = list(system_texts)
    prompt, user_texts, conversation, assistant_turns = "", [], list(system_texts), 0
    for i, message in enumerate(messages):
        at = f"messages.{i + 1}.member"
        message = _object(message, at)
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise invalid(f"{at}.role", "Member must satisfy enum value set: [user, assistant]")
        texts_counted, texts = _block_texts(_list(message.get("content"), f"{at}.content"), f"{at}.content", found)
        counted.extend(texts_counted)
        conversation.append("\n".join(texts_counted))
        if role == "user":
            text = "\n".join(texts)
            user_texts.append(text)
            if text:
                prompt = text
        else:
            assistant_turns += 1
    if data.get("inferenceConfig") is not None:
        _inference(data["inferenceConfig"])
    tools, forced, any_tool = _tools(_object(data["toolConfig"], "toolConfig")) if data.get("toolConfig") is not None \
        else ((), None, False)
    extra = data.get("additionalModelRequestFields")
    thinking = extra.get("thinking") if isinstance(extra, dict) else None
    schema = _output_schema(data)
    if schema is not None:
        counted.append(json.dumps(schema, sort_keys=True))
    return ChatRequest(
        provider=NAME, endpoint=ENDPOINT, model=model_id, prompt=prompt, user_texts=tuple(user_texts),
        system="\n".join(system_texts), conversation="\n".join(conversation), tools=tools, forced_tool=forced,
        any_tool=any_tool, has_tool_result=found.get("tool_result", False), turn=assistant_turns + 1, stream=stream,
        input_tokens=count_all(counted + tool_texts(tools)),
        thinking=isinstance(thinking, dict) and thinking.get("type") == "enabled", json_schema=schema,
    )


def new_ids() -> ResponseIds:
    return make_ids("", 32)  # no id is in a Converse answer; the journal keeps this one


def tool_use_id(answer_id: str, index: int) -> str:
    """A tool call's id when the entry fixes none, in the service's shape (`tooluse_` and 22 characters)."""
    return "tooluse_" + hashlib.sha256(f"{answer_id}/{index}".encode()).hexdigest()[:22]


def stop_reason(reply: Reply) -> str:
    reason = reply.anthropic_stop()
    return STOP_REASONS.get(reason, reason)


def usage(request: ChatRequest, match: Match) -> dict:
    inputs = match.reply.usage.get("input_tokens", request.input_tokens)
    outputs = match.reply.usage.get("output_tokens", match.output_tokens)
    return {"inputTokens": inputs, "outputTokens": outputs, "totalTokens": inputs + outputs}


def content(request: ChatRequest, reply: Reply, answer_id: str) -> list[dict]:
    """The answer's content blocks: reasoning (when the request enables thinking), text, then tool uses."""
    blocks: list[dict] = []
    if request.thinking:
        thinking = reply.thinking or DEFAULT_THINKING
        blocks.append({"reasoningContent": {"reasoningText": {"text": thinking, "signature": signature(thinking)}}})
    if reply.text is not None or not reply.tool_calls:
        blocks.append({"text": reply.text or ""})
    for index, call in enumerate(reply.tool_calls):
        blocks.append({"toolUse": {"toolUseId": call.id or tool_use_id(answer_id, index), "name": call.name,
                                   "input": json.loads(call.arguments)}})
    return blocks


def render_json(request: ChatRequest, match: Match, ids: ResponseIds) -> bytes:
    return dumps({
        "output": {"message": {"role": "assistant", "content": content(request, match.reply, ids.response_id)}},
        "stopReason": stop_reason(match.reply),
        "usage": usage(request, match),
        "metrics": {"latencyMs": ids.latency_ms},
    })


def text_deltas(index: int, kind: str, text: str, chunk: Any) -> Sequence[bytes]:
    """The contentBlockDelta messages of a text (`kind` "text") or reasoning block. They hold no id, so
    the same text always makes the same messages: those of canned answers are remembered."""
    if worth_remembering(text, chunk):
        return _remembered_deltas(index, kind, text, chunk)
    return _frame_deltas(index, kind, text, chunk)


@functools.lru_cache(maxsize=256)
def _remembered_deltas(index: int, kind: str, text: str, chunk: Any) -> tuple[bytes, ...]:
    return tuple(_frame_deltas(index, kind, text, chunk))


def _frame_deltas(index: int, kind: str, text: str, chunk: Any) -> list[bytes]:
    delta = event_stream.framer("contentBlockDelta")
    head = b'{"contentBlockIndex":' + str(index).encode() + b',"delta":'
    head, tail = (head + b'{"text":', b"}}") if kind == "text" else (head + b'{"reasoningContent":{"text":', b"}}}")
    return [delta(head + piece + tail) for piece in json_pieces(text, chunk)]


def render_stream(request: ChatRequest, match: Match, ids: ResponseIds, chunk: Any = "char") -> Iterator[bytes]:
    """The event-stream messages of a streamed answer; text one character (or `chunk`) per delta."""
    yield MESSAGE_START
    delta = event_stream.framer("contentBlockDelta")
    for index, block in enumerate(content(request, match.reply, ids.response_id)):
        prefix = b'{"contentBlockIndex":' + str(index).encode() + b',"delta":'
        if "text" in block:
            yield from text_deltas(index, "text", block["text"], chunk)
        elif "reasoningContent" in block:
            reasoning = block["reasoningContent"]["reasoningText"]
            yield from text_deltas(index, "reasoningContent", reasoning["text"], chunk)
            yield delta(prefix + b'{"reasoningContent":{"signature":' + dumps(reasoning["signature"]) + b"}}}")
        else:
            use = block["toolUse"]
            yield event_stream.event("contentBlockStart", dumps({
                "contentBlockIndex": index, "start": {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}}))
            arguments = dumps(use["input"]).decode()
            for at in range(0, len(arguments), ARGUMENT_PIECE):
                yield delta(prefix + b'{"toolUse":{"input":' + dumps(arguments[at:at + ARGUMENT_PIECE]) + b"}}}")
        yield event_stream.event("contentBlockStop", b'{"contentBlockIndex":' + str(index).encode() + b"}")
    yield event_stream.event("messageStop", b'{"stopReason":' + dumps(stop_reason(match.reply)) + b"}")
    yield event_stream.event("metadata", dumps({"usage": usage(request, match), "metrics": {"latencyMs": ids.latency_ms}}))
