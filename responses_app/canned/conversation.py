"""The provider-neutral shapes between the wire formats and matching: what was asked, what to answer."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

NO_USAGE: Mapping[str, int] = MappingProxyType({})  # shared by every reply without overrides


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """Everything matching and rendering need from a request, whatever API it came through."""

    provider: str  # one of canned/entries.py's PROVIDERS: "openai", "anthropic", "azure", "gemini", ...
    endpoint: str  # "chat", "messages", "responses", "completions", "generate", ...
    model: str
    prompt: str  # the text of the last user message that has text
    user_texts: tuple[str, ...] = ()
    system: str = ""
    conversation: str = ""  # every message's text, in order, one per line
    tools: tuple[Tool, ...] = ()
    forced_tool: str | None = None  # the tool the request insists on, if any
    any_tool: bool = False  # it insists on a call to any of its tools (forced_tool is then the first)
    has_tool_result: bool = False
    turn: int = 1  # 1 + the number of assistant turns already in the request
    stream: bool = False
    n: int = 1
    include_usage: bool = False
    input_tokens: int = 0
    json_schema: dict[str, Any] | None = None  # a structured-output schema the text must satisfy
    json_mode: bool = False
    thinking: bool = False  # Anthropic extended thinking requested


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str  # JSON text
    id: str | None = None  # fixed id, else a fresh one per answer


# Neutral finish reasons and their names in each API.
OPENAI_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}
ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
FROM_ANTHROPIC = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                  "refusal": "content_filter", "pause_turn": "stop", "model_context_window_exceeded": "length"}


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: text and/or tool calls, optional thinking, and the details a script may fix."""

    text: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    thinking: str | None = None
    finish_reason: str | None = None  # OpenAI name, when the entry fixes it
    stop_reason: str | None = None  # Anthropic name, when the entry fixes it
    usage_overrides: Mapping[str, int] | None = None  # {"input_tokens": .., "output_tokens": ..}
    response_id: str | None = None
    created: int | None = None
    signature: str | None = None  # the thinking's signature, when the entry fixes it (a recording does)
    filtered: tuple[str, str] | None = None  # (category, severity) of the content filter that cut this answer off

    @property
    def usage(self) -> Mapping[str, int]:
        return self.usage_overrides or NO_USAGE

    def openai_finish(self) -> str:
        if self.finish_reason:
            return self.finish_reason
        if self.stop_reason:
            return OPENAI_FINISH[FROM_ANTHROPIC.get(self.stop_reason, "stop")]
        return "tool_calls" if self.tool_calls else "stop"

    def anthropic_stop(self) -> str:
        if self.stop_reason:
            return self.stop_reason
        if self.finish_reason:
            return ANTHROPIC_STOP.get(self.finish_reason, "end_turn")
        return "tool_use" if self.tool_calls else "end_turn"
