"""Recordings: what an upstream API answered to a request, kept as an ordinary canned entry.

A recording is a row like any other (text, tool calls, thinking with its signature, finish reason,
usage), answered through the same renderers, with `recorded: <fingerprint>` in its options. The
fingerprint (`fingerprint`) is a hash of what decides the answer: the endpoint, the model, the whole
conversation so far (tool calls and results included), the offered tools and the other parameters,
with volatile values (tool-call ids, thinking signatures, `stream`, `user`, `metadata`) left out or
numbered in order of appearance. So each step of an agent loop has a recording of its own, and two
conversations that end with the same user message do not share one. The index holds recordings apart
and consults them only after every hand-written entry missed (matching.SetIndex.recording).

This module turns an upstream answer (a JSON body, or a stream's events) into such an entry, and
writes it with its raw exchange (models.RecordedExchange). It knows nothing of HTTP or the request
path (api/upstream.py forwards and calls it).

Longer than 350 lines: reading each endpoint's answer, JSON and streamed, is one table of small readers
that belong together.
"""
from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction

from responses_app.canned.entries import FINISH_REASONS, STOP_REASONS, entry_digest, parse_entry
from responses_app.canned.fields import EntryError
from responses_app.models import CannedResponse, RecordedExchange, SetKey, Source

# Top-level request fields that do not change the answer (or change between runs).
VOLATILE_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store", "service_tier",
                             "safety_identifier", "prompt_cache_key", "encoding_format"})
ID_FIELDS = frozenset({"id", "tool_call_id", "call_id", "tool_use_id"})  # numbered in order of appearance
DROPPED_FIELDS = frozenset({"signature", "encrypted_content"})  # opaque values a replay cannot give back
# The event (or data line) that says a stream is complete, per endpoint.
COMPLETE_EVENTS = {"chat": "[DONE]", "completions": "[DONE]", "messages": "message_stop",
                   "responses": "response.completed"}
INCOMPLETE_ALSO_COMPLETE = ("response.incomplete",)


def fingerprint(path: str, body: dict[str, Any]) -> str:
    """The sha256 of the request's endpoint and everything in its body that decides the answer."""
    numbered: dict[str, str] = {}

    def canonical(value: Any, top: bool = False) -> Any:
        if isinstance(value, dict):
            result = {}
            for key, item in value.items():
                if (top and key in VOLATILE_FIELDS) or key in DROPPED_FIELDS:
                    continue
                if key == "previous_response_id" and top:
                    result[key] = "(previous)" if item else None  # ids differ between recording and replay
                elif key in ID_FIELDS and isinstance(item, str):
                    result[key] = numbered.setdefault(item, f"#{len(numbered) + 1}")
                else:
                    result[key] = canonical(item)
            return result
        if isinstance(value, list):
            return [canonical(item) for item in value]
        return value

    text = json.dumps([path.rstrip("/"), canonical(body, top=True)], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def embedding_fingerprint(path: str, model: str, dimensions: int | None, text: str) -> str:
    """One text of an embeddings request: each input has a recording of its own."""
    return fingerprint(path, {"model": model, "dimensions": dimensions, "input": text})


# ---- reading an answer -------------------------------------------------------------------------

@dataclass
class SSEEvent:
    raw: bytes
    name: str
    data: str

    def json(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.data)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


@dataclass
class SSEReader:
    """Splits a byte stream into server-sent events as it arrives."""

    buffer: bytes = b""
    events: list[SSEEvent] = field(default_factory=list)

    def feed(self, data: bytes) -> list[SSEEvent]:
        self.buffer += data.replace(b"\r\n", b"\n")
        found = []
        while b"\n\n" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\n\n", 1)
            if not raw.strip():
                continue
            name, data_lines = "", []
            for line in raw.decode("utf-8", "replace").split("\n"):
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data_lines.append(line[5:].removeprefix(" "))
            event = SSEEvent(raw + b"\n\n", name, "\n".join(data_lines))
            found.append(event)
        self.events.extend(found)
        return found


def parse_events(text: str) -> list[SSEEvent]:
    reader = SSEReader()
    reader.feed(text.encode("utf-8") + b"\n\n")
    return reader.events


def completes(endpoint: str, event: SSEEvent) -> bool:
    """Whether this event ends a complete stream of the endpoint."""
    marker = COMPLETE_EVENTS.get(endpoint)
    if event.data.strip() == "[DONE]":
        return marker == "[DONE]"
    kind = event.name or (event.json() or {}).get("type", "")
    return kind == marker or (endpoint == "responses" and kind in INCOMPLETE_ALSO_COMPLETE)


def _usage(prompt: Any, completion: Any) -> dict[str, int]:
    usage = {}
    if isinstance(prompt, int):
        usage["input_tokens"] = prompt
    if isinstance(completion, int):
        usage["output_tokens"] = completion
    return usage


def _reply(text: str | None, calls: list[dict], *, thinking: str = "", signature: str = "",
           finish: str | None = None, stop: str | None = None, usage: dict[str, int] | None = None) -> dict[str, Any]:
    reply: dict[str, Any] = {"text": text or ""}
    if calls:
        reply["tool_calls"] = [{"name": c["name"], "arguments": c.get("arguments") or "{}"} for c in calls]
    if thinking:
        reply["thinking"] = thinking
    if signature:
        reply["signature"] = signature
    if finish in FINISH_REASONS:
        reply["finish_reason"] = finish
    if stop in STOP_REASONS:
        reply["stop_reason"] = stop
    if usage:
        reply["usage"] = usage
    return reply


def _chat_json(body: dict) -> dict[str, Any]:
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    calls = [{"name": c["function"]["name"], "arguments": c["function"].get("arguments")}
             for c in message.get("tool_calls") or () if c.get("function")]
    usage = body.get("usage") or {}
    return _reply(message.get("content"), calls, finish=choice.get("finish_reason"),
                  usage=_usage(usage.get("prompt_tokens"), usage.get("completion_tokens")))


def _chat_stream(events: Iterable[dict]) -> dict[str, Any]:
    text, calls, finish, usage = [], {}, None, {}
    for event in events:
        usage = event.get("usage") or usage
        for choice in event.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text.append(delta.get("content") or "")
            for call in delta.get("tool_calls") or ():
                held = calls.setdefault(call.get("index", 0), {"name": "", "arguments": ""})
                function = call.get("function") or {}
                held["name"] += function.get("name") or ""
                held["arguments"] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    return _reply("".join(text), [calls[i] for i in sorted(calls)], finish=finish,
                  usage=_usage(usage.get("prompt_tokens"), usage.get("completion_tokens")))


def _messages_json(body: dict) -> dict[str, Any]:
    text, calls, thinking, signature = [], [], "", ""
    for block in body.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append({"name": block.get("name", ""), "arguments": json.dumps(block.get("input") or {})})
        elif kind == "thinking":
            thinking += block.get("thinking", "")
            signature = block.get("signature", "") or signature
    usage = body.get("usage") or {}
    return _reply("".join(text) if text or not calls else None, calls, thinking=thinking, signature=signature,
                  stop=body.get("stop_reason"), usage=_usage(usage.get("input_tokens"), usage.get("output_tokens")))


def _messages_stream(events: Iterable[dict]) -> dict[str, Any]:
    message: dict[str, Any] = {"content": [], "usage": {}}
    blocks: dict[int, dict] = {}
    partial: dict[int, str] = {}
    for event in events:
        kind = event.get("type")
        if kind == "message_start":
            message["usage"] = dict((event.get("message") or {}).get("usage") or {})
        elif kind == "content_block_start":
            blocks[event.get("index", 0)] = dict(event.get("content_block") or {})
        elif kind == "content_block_delta":
            index, delta = event.get("index", 0), event.get("delta") or {}
            block = blocks.setdefault(index, {})
            for key, target in (("text", "text"), ("thinking", "thinking"), ("signature", "signature")):
                if key in delta:
                    block[target] = block.get(target, "") + delta[key]
            if "partial_json" in delta:
                partial[index] = partial.get(index, "") + delta["partial_json"]
        elif kind == "message_delta":
            message["stop_reason"] = (event.get("delta") or {}).get("stop_reason")
            message["usage"].update(event.get("usage") or {})
    for index in sorted(blocks):
        block = blocks[index]
        if block.get("type") == "tool_use" and index in partial:
            block["input"] = json.loads(partial[index] or "{}")
        message["content"].append(block)
    return _messages_json(message)


def _responses_json(body: dict) -> dict[str, Any]:
    text, calls, thinking = [], [], ""
    for item in body.get("output") or ():
        kind = item.get("type")
        if kind == "message":
            text.extend(part.get("text", "") for part in item.get("content") or () if part.get("type") == "output_text")
        elif kind == "function_call":
            calls.append({"name": item.get("name", ""), "arguments": item.get("arguments")})
        elif kind == "reasoning":
            thinking += "".join(part.get("text", "") for part in item.get("summary") or ())
    incomplete = (body.get("incomplete_details") or {}).get("reason")
    usage = body.get("usage") or {}
    finish = "length" if incomplete == "max_output_tokens" else ("tool_calls" if calls else "stop")
    return _reply("".join(text) if text or not calls else None, calls, thinking=thinking, finish=finish,
                  usage=_usage(usage.get("input_tokens"), usage.get("output_tokens")))


def _responses_stream(events: Iterable[dict]) -> dict[str, Any]:
    final: dict[str, Any] = {}
    for event in events:
        if event.get("type") in ("response.completed", "response.incomplete"):
            final = event.get("response") or {}
    return _responses_json(final)


def _completions_json(body: dict) -> dict[str, Any]:
    choice = (body.get("choices") or [{}])[0]
    usage = body.get("usage") or {}
    return _reply(choice.get("text", ""), [], finish=choice.get("finish_reason"),
                  usage=_usage(usage.get("prompt_tokens"), usage.get("completion_tokens")))


def _completions_stream(events: Iterable[dict]) -> dict[str, Any]:
    text, finish, usage = [], None, {}
    for event in events:
        usage = event.get("usage") or usage
        for choice in event.get("choices") or ():
            text.append(choice.get("text") or "")
            finish = choice.get("finish_reason") or finish
    return _reply("".join(text), [], finish=finish,
                  usage=_usage(usage.get("prompt_tokens"), usage.get("completion_tokens")))


READERS = {"chat": (_chat_json, _chat_stream), "messages": (_messages_json, _messages_stream),
           "responses": (_responses_json, _responses_stream), "completions": (_completions_json, _completions_stream)}


def reply_of(endpoint: str, body: bytes | None = None, events: Iterable[SSEEvent] = ()) -> dict[str, Any]:
    """The reply (a responses file's `response:`) an upstream answer gives: its JSON body, or its events."""
    from_json, from_stream = READERS[endpoint]
    if body is not None:
        return from_json(json.loads(body))
    return from_stream(data for data in (event.json() for event in events) if data is not None)


def vectors_of(body: bytes) -> list[list[float]]:
    """An embeddings answer's vectors, in input order (base64 ones decoded)."""
    data = sorted(json.loads(body).get("data") or (), key=lambda item: item.get("index", 0))
    vectors = []
    for item in data:
        vector = item.get("embedding")
        if isinstance(vector, str):
            raw = base64.b64decode(vector)
            vector = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        vectors.append([float(x) for x in vector])
    return vectors


# ---- storing -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recording:
    """One entry to store: its prompt (shown in the admin), the list entry it is, and its raw exchange."""

    prompt: str
    entry: dict[str, Any]  # a responses file's entry, `recorded:` included
    exchange: dict[str, Any] | None  # RecordedExchange's fields; None for the second and later texts of a batch


def answer_entry(fp: str, prompt: str, name: str, reply: dict[str, Any],
                 timing: dict[str, Any] | None = None) -> dict[str, Any]:
    entry = {"match": prompt.strip() or "(no user text)", "recorded": fp, "name": name, "response": reply}
    if timing:
        entry["recorded_timing"] = timing
    return entry


def recorded_timing(reply: dict[str, Any], ttft_ms: float | None, stream_seconds: float) -> dict[str, Any]:
    """The pace a replay takes when asked for the recorded timing: the time to the first event, then the
    answer's characters spread over the time the stream took after it."""
    timing: dict[str, Any] = {}
    if ttft_ms is not None:
        timing["ttft_ms"] = round(ttft_ms, 1)
    characters = len(reply.get("text") or "") + sum(len(call.get("arguments") or "") for call in
                                                     reply.get("tool_calls") or ())
    if stream_seconds > 0.05 and characters:
        timing["characters_per_second"] = round(characters / stream_seconds, 3)
    return timing


def embedding_entry(fp: str, text: str, name: str, vector: list[float]) -> dict[str, Any]:
    return {"match": text.strip() or "(empty text)", "recorded": fp, "name": name, "embedding": vector}


def save(recordings: list[Recording], set_key: SetKey) -> list[tuple[int, str, str, dict[str, Any], int]]:
    """Store the recordings in `set_key`'s set (replacing what was recorded for the same requests), each
    with its exchange, in one transaction; the rows as the index builds entries from them. Raises
    EntryError when an answer is not a valid entry (nothing is stored then)."""
    scenario, test_id = set_key
    parsed = [(recording, *parse_entry(recording.entry)) for recording in recordings]
    for attempt in (1, 2):
        try:
            return _store(parsed, scenario, test_id)
        except IntegrityError:  # another process stored the same request meanwhile: replace it
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _store(parsed: list, scenario: str, test_id: str) -> list[tuple[int, str, str, dict[str, Any], int]]:
    rows = []
    with transaction.atomic():
        for recording, prompt, answer, options in parsed:
            digest = entry_digest(prompt, options)
            row = CannedResponse.objects.filter(scenario=scenario, test_id=test_id, key_digest=digest).first()
            if row is None:
                row = CannedResponse(prompt=prompt, scenario=scenario, test_id=test_id, source=Source.RECORDED)
            row.answer, row.options, row.reviewed = answer, options, False
            row.save()
            if recording.exchange is not None:
                RecordedExchange.objects.update_or_create(entry=row, defaults=recording.exchange)
            rows.append((row.id, row.prompt, row.answer, row.options, row.position))
    return rows


__all__ = ["EntryError", "Recording", "SSEEvent", "SSEReader", "answer_entry", "completes", "embedding_entry",
           "fingerprint", "embedding_fingerprint", "parse_events", "reply_of", "save", "vectors_of"]
