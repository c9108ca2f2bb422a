"""The one interface every wire format implements.

A provider module (openai_chat, anthropic_messages, ...) is the Provider itself: module-level constants
and functions with these names. The generic view path (api/views.py, api/answer.py) parses with it,
finds and plans the answer, and renders with it, so adding a wire format is one module here plus its
URL lines in api/urls.py.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from responses_app.canned.conversation import ChatRequest
from responses_app.canned.matching import Match
from responses_app.providers.common import ResponseIds


class Provider(Protocol):
    """A provider may also set, where it differs from SSE and the OpenAI-like defaults:
    STREAM_CONTENT_TYPE (its streams' Content-Type, "text/event-stream; charset=utf-8" by default),
    MALFORMED_EVENT (a broken event in its framing, for the `malformed` stream fault) and
    ANY_CONTENT_TYPE (true: its body is read as JSON whatever the request's Content-Type says)."""

    NAME: str  # the provider an entry's `provider:` restriction names, and the journal's `provider`
    ENDPOINT: str  # the journal's `endpoint`
    # Optional: STREAM_CONTENT_TYPE, a stream's Content-Type when it is not SSE (Gemini's JSON array).

    def parse(self, data: dict) -> ChatRequest:
        """Validate a request body; raise APIError(400) naming the first bad field."""

    def new_ids(self) -> ResponseIds:
        """The ids and timestamp one answer carries."""

    def render_json(self, request: ChatRequest, match: Match, ids: ResponseIds) -> bytes:
        """The non-streamed answer's body."""

    def render_stream(self, request: ChatRequest, match: Match, ids: ResponseIds, chunk: Any = "char") -> Iterator[bytes]:
        """The streamed answer: each item one complete event, in the format's framing."""

    def render_error(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                     error_type: str | None = None, request_id: str | None = None, details: dict | None = None) -> dict:
        """The error body, in the format's shape (`details` where the format has them)."""

    def render_stream_error(self, message: str, *, error_type: str | None = None) -> bytes:
        """An error event in the middle of a stream, as the format's SDK recognises one (of the type a
        `stream_error`'s `type` asks for, where the format has types)."""


# Optional module constants, for formats that do not stream SSE or need more than the above:
#   STREAM_CONTENT_TYPE   the streamed answer's Content-Type (default "text/event-stream; charset=utf-8")
#   STREAM_HEADERS        headers a streamed answer carries besides it
#   MALFORMED_EVENT       what the `malformed` stream fault sends (default: a cut SSE event)
#   error_headers(status, error_type) -> dict   headers an error answer carries besides its body


class CountsTokens(Provider, Protocol):
    def parse_count(self, data: dict) -> ChatRequest:
        """Validate the body of the format's token-counting endpoint."""

    def count(self, request: ChatRequest) -> bytes:
        """The body of the format's token-counting endpoint."""
