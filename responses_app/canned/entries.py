"""What a canned entry may say, checked in one place for the responses file and the admin alike.

An entry's stored form is a row: `prompt` (the text it matches), `answer` (the text of its reply) and
`options`, a JSON object holding only what differs from the defaults:

    match: exact | normalized | contains | regex      (default exact)
    on: last_user | any_user | system | conversation  (default last_user)
    model: a glob such as "gpt-4*"      provider: openai | anthropic | azure | gemini | bedrock | ollama
    tool: a tool name the request must offer          has_tool_result: true | false
    priority: an integer (higher first; default 0)    name: a label for logs
    response: the reply's parts other than its text (tool_calls, thinking, finish_reason, stop_reason,
              usage, id, created)
    turns: a list of full replies, one per conversation turn
    embedding: a fixed vector for /v1/embeddings
    error, timing, stream_error, content_filter: failures and pacing for this entry (fault_schema.py)
    recorded: the fingerprint of the request a recording answers (canned/recordings.py); such an entry
              answers only that request, and only when no hand-written entry does
    recorded_timing: a recording's own pace (a `timing`), used when a request sends X-Mock-Timing: recorded
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import re2

from responses_app.canned.fault_schema import parse_content_filter, parse_error, parse_stream_error, parse_timing
from responses_app.canned.fields import EntryError, Scalar, choice, integer, line_of, mapping, plain, text, unknown_keys

MATCH_KINDS = ("exact", "normalized", "contains", "regex")
TARGETS = ("last_user", "any_user", "system", "conversation")
PROVIDERS = ("openai", "anthropic", "azure", "gemini", "bedrock", "ollama")
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")
STOP_REASONS = ("end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal",
                "model_context_window_exceeded")
ENTRY_KEYS = ("match", "response", "turns", "model", "provider", "tool", "has_tool_result", "priority", "name",
              "embedding", "error", "timing", "stream_error", "content_filter", "recorded", "recorded_timing")
FAULT_KEYS = ("error", "timing", "stream_error", "content_filter")  # failures and timing on demand (fault_schema.py)
RESPONSE_KEYS = ("text", "tool_calls", "thinking", "signature", "finish_reason", "stop_reason", "usage", "id",
                 "created")
# The options that decide what an entry matches: two entries may not agree on all of them.
MATCH_OPTIONS = ("match", "on", "model", "provider", "tool", "has_tool_result", "recorded")


def parse_match(value: Any) -> tuple[str, str, str]:
    """`match:` as (kind, text, target): a string is an exact match on the last user message."""
    if not isinstance(value, dict):
        return "exact", text(value, "match"), "last_user"
    unknown_keys(value, MATCH_KINDS + ("on",), "match")
    kinds = [k for k in MATCH_KINDS if k in value]
    if len(kinds) != 1:
        raise EntryError("match", "`match` needs exactly one of: " + ", ".join(MATCH_KINDS))
    kind = kinds[0]
    pattern = text(value[kind], f"match.{kind}")
    if kind == "regex":
        check_regex(pattern, f"match.{kind}", line_of(value[kind]))
    target = choice(value["on"], "match.on", TARGETS) if "on" in value else "last_user"
    return kind, pattern, target


def check_regex(pattern: str, field: str, line: int = 0) -> None:
    try:
        re2.compile(pattern)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise EntryError(field, f"invalid regular expression {pattern!r}: {detail} "
                         "(the RE2 syntax: no look-around or back-references)", line) from None


def parse_reply(value: Any, field: str) -> dict[str, Any]:
    """A reply: a string is its text; a mapping may add tool calls, thinking and fixed details."""
    if not isinstance(value, dict):
        return {"text": text(value, field)}
    unknown_keys(value, RESPONSE_KEYS, field)
    reply: dict[str, Any] = {}
    if "text" in value:
        reply["text"] = text(value["text"], f"{field}.text")
    if "thinking" in value:
        reply["thinking"] = text(value["thinking"], f"{field}.thinking")
    if "signature" in value:
        reply["signature"] = text(value["signature"], f"{field}.signature")
    if "tool_calls" in value:
        calls = value["tool_calls"]
        if not isinstance(calls, list) or not calls:
            raise EntryError(f"{field}.tool_calls", f"`{field}.tool_calls` must be a non-empty list", line_of(calls))
        reply["tool_calls"] = [_tool_call(call, f"{field}.tool_calls[{i}]") for i, call in enumerate(calls)]
    if "finish_reason" in value:
        reply["finish_reason"] = choice(value["finish_reason"], f"{field}.finish_reason", FINISH_REASONS)
    if "stop_reason" in value:
        reply["stop_reason"] = choice(value["stop_reason"], f"{field}.stop_reason", STOP_REASONS)
    if "usage" in value:
        usage = mapping(value["usage"], f"{field}.usage")
        names = {"input_tokens": "input_tokens", "prompt_tokens": "input_tokens",
                 "output_tokens": "output_tokens", "completion_tokens": "output_tokens"}
        unknown_keys(usage, tuple(names), f"{field}.usage")
        reply["usage"] = {names[k]: integer(v, f"{field}.usage.{k}") for k, v in usage.items()}
    if "id" in value:
        reply["id"] = text(value["id"], f"{field}.id")
    if "created" in value:
        reply["created"] = integer(value["created"], f"{field}.created")
    if not reply.get("text") and not reply.get("tool_calls") and "text" not in reply:
        reply["text"] = ""
    return reply


def _tool_call(value: Any, field: str) -> dict[str, Any]:
    call = mapping(value, field)
    unknown_keys(call, ("name", "arguments", "id"), field)
    if "name" not in call:
        raise EntryError(f"{field}.name", f"`{field}.name` is required")
    result = {"name": text(call["name"], f"{field}.name")}
    arguments = call.get("arguments", {})
    if isinstance(arguments, (Scalar, str)):
        raw = text(arguments, f"{field}.arguments")
        try:
            decoded = json.loads(raw)
        except ValueError:
            raise EntryError(f"{field}.arguments", f"`{field}.arguments` is not valid JSON: {raw[:60]!r}",
                             line_of(arguments)) from None
        if not isinstance(decoded, dict):
            raise EntryError(f"{field}.arguments", f"`{field}.arguments` must be a JSON object", line_of(arguments))
        result["arguments"] = json.dumps(decoded, ensure_ascii=False)
    else:
        decoded = plain(mapping(arguments, f"{field}.arguments"))
        try:
            result["arguments"] = json.dumps(decoded, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            raise EntryError(f"{field}.arguments", f"`{field}.arguments` cannot be written as JSON") from None
    if "id" in call:
        result["id"] = text(call["id"], f"{field}.id")
    return result


def parse_entry(entry: dict) -> tuple[str, str, dict[str, Any]]:
    """A list entry from a responses file (or the admin) as the row it becomes: (prompt, answer, options)."""
    unknown_keys(entry, ENTRY_KEYS, "")
    if "match" not in entry:
        raise EntryError("match", "`match` is required (the text this entry answers)")
    kind, prompt, target = parse_match(entry["match"])
    options: dict[str, Any] = {}
    if kind != "exact":
        options["match"] = kind
    if target != "last_user":
        options["on"] = target
    if "model" in entry:
        options["model"] = text(entry["model"], "model")
    if "provider" in entry:
        options["provider"] = choice(entry["provider"], "provider", PROVIDERS)
    if "tool" in entry:
        options["tool"] = text(entry["tool"], "tool")
    if "has_tool_result" in entry:
        flag = plain(entry["has_tool_result"])
        if not isinstance(flag, bool):
            raise EntryError("has_tool_result", "`has_tool_result` must be true or false", line_of(entry["has_tool_result"]))
        options["has_tool_result"] = flag
    if "recorded" in entry:
        options["recorded"] = text(entry["recorded"], "recorded", allow_empty=False)
    if "recorded_timing" in entry:
        options["recorded_timing"] = parse_timing(entry["recorded_timing"], "recorded_timing")
    if "priority" in entry:
        options["priority"] = integer(entry["priority"], "priority")
    if "name" in entry:
        options["name"] = text(entry["name"], "name")
    answer = ""
    if "response" in entry and "turns" in entry:
        raise EntryError("turns", "give either `response` or `turns`, not both")
    if "response" in entry:
        reply = parse_reply(entry["response"], "response")
        answer = reply.pop("text", "")
        if reply:
            options["response"] = reply
    elif "turns" in entry:
        turns = entry["turns"]
        if not isinstance(turns, list) or not turns:
            raise EntryError("turns", "`turns` must be a non-empty list of replies", line_of(turns))
        options["turns"] = [parse_reply(turn, f"turns[{i}]") for i, turn in enumerate(turns)]
        answer = options["turns"][0].get("text", "")
    if "embedding" in entry:
        vector = plain(entry["embedding"])
        if not isinstance(vector, list) or not vector or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector):
            raise EntryError("embedding", "`embedding` must be a non-empty list of numbers", line_of(entry["embedding"]))
        options["embedding"] = [float(x) for x in vector]
    for key, parse in (("error", parse_error), ("timing", parse_timing), ("stream_error", parse_stream_error),
                       ("content_filter", parse_content_filter)):
        if key in entry:
            options[key] = parse(entry[key], key)
    if not any(key in entry for key in ("response", "turns", "embedding", "error", "content_filter")):
        raise EntryError("response", "the entry needs a `response` (or `turns`, an `embedding`, an `error` or a "
                                     "`content_filter`)")
    return prompt, answer, options


def entry_from_row(prompt: str, answer: str, options: dict[str, Any]) -> dict[str, Any]:
    """The list entry a stored row stands for (the inverse of parse_entry)."""
    spec = {k: v for k, v in options.items() if k in ("model", "provider", "tool", "has_tool_result", "priority",
                                                       "name", "turns", "embedding", "recorded", "recorded_timing",
                                                       *FAULT_KEYS)}
    kind, target = options.get("match", "exact"), options.get("on")
    spec["match"] = prompt if kind == "exact" and not target else {kind: prompt, **({"on": target} if target else {})}
    if "turns" not in options:
        spec["response"] = {**(options.get("response") or {}), "text": answer}
    return spec


def validate_row(prompt: str, answer: str, options: Any) -> dict[str, Any]:
    """Check a row typed in the admin; return its options in stored form, or raise EntryError."""
    if not isinstance(options, dict):
        raise EntryError("options", "options must be a JSON object")
    unknown_keys(options, ("match", "on", "model", "provider", "tool", "has_tool_result", "priority", "name",
                            "response", "turns", "embedding", "recorded", "recorded_timing", *FAULT_KEYS), "")
    if options.get("match", "exact") not in MATCH_KINDS:
        raise EntryError("match", f"`match` must be one of {', '.join(MATCH_KINDS)}")
    return parse_entry(entry_from_row(prompt, answer, options))[2]


def entry_key(prompt: str, options: dict[str, Any]) -> str:
    """What makes an entry distinct: its prompt, and how and where it matches. Its digest is unique."""
    matching = {k: options[k] for k in MATCH_OPTIONS if k in options}
    if not matching:
        return prompt  # the original format: the prompt alone
    return prompt + "\x00" + json.dumps(matching, sort_keys=True)


def entry_digest(prompt: str, options: dict[str, Any]) -> str:
    return hashlib.sha256(entry_key(prompt, options).encode("utf-8", "surrogatepass")).hexdigest()
