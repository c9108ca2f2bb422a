"""Azure OpenAI: OpenAI's chat completions, completions, Responses and embeddings bodies, with Azure's
content-filter annotations and its error shapes.

Azure serves the OpenAI wire format (the openai SDK's `AzureOpenAI` is its `OpenAI` client with other URLs
and an `api-key` header) and adds what its content filters found: `prompt_filter_results` on each answer,
`content_filter_results` on each choice, and, first in a stream, a chunk with no choices that carries only
the prompt's results. Each Azure format here is an OpenAI module's parsing and rendering, with the
annotations spliced into the rendered bytes before each choice's `,"logprobs":null,"finish_reason":`. That
sequence occurs nowhere else in a body (inside a JSON string its quotes would be escaped). A chat stream,
tens of chunks, is annotated by openai_chat.render_stream itself (its two annotation arguments), which
costs nothing over OpenAI's stream; splicing each chunk cost a tenth of the request.
"""
from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

from django.conf import settings

from responses_app.canned.conversation import ChatRequest, Reply
from responses_app.canned.fault_schema import DEFAULT_FILTER, DETECTED_CATEGORIES, SEVERITY_CATEGORIES
from responses_app.canned.matching import Match
from responses_app.providers import openai_chat, openai_completions, openai_embeddings, openai_responses
from responses_app.providers.common import ResponseIds, dumps

NAME = "azure"
# mockllm's own error codes, as Azure writes them: the status.
AZURE_CODES = {"unknown_url": "404", "invalid_api_key": "401", "model_not_found": "404"}
VALIDATION_STATUSES = (400, 413, 415, 422)  # the model's own validation: OpenAI's error shape, as Azure passes it on


def filter_results(target: str, filtered: tuple[str, str] | None = None) -> dict[str, Any]:
    """A content filter's verdict on the prompt or a completion: every category safe but the one filtered."""
    results: dict[str, Any] = {category: {"filtered": False, "severity": "safe"} for category in SEVERITY_CATEGORIES}
    results.update({category: {"filtered": False, "detected": False} for category in DETECTED_CATEGORIES[target]})
    if filtered is not None:
        category, severity = filtered
        results[category] = {"filtered": True, "detected": True} if category in DETECTED_CATEGORIES[target] else \
            {"filtered": True, "severity": severity}
    return dict(sorted(results.items()))  # in Azure's (alphabetical) order


def filter_details(category: str, severity: str) -> dict[str, Any]:
    """The `innererror` of a filtered prompt's 400 (the Provider's optional hook; api/errors.py calls it)."""
    return {"code": "ResponsibleAIPolicyViolation",
            "content_filter_result": filter_results("prompt", (category, severity))}


MARK = b',"logprobs":null,"finish_reason":'
OPEN_CHOICE = MARK + b"null}"  # a chunk that continues its choice
CLOSED_CHOICE = MARK + b'"'  # the choice's finish (in a stream) or the whole choice (in JSON)
SAFE = b',"content_filter_results":' + dumps(filter_results("completion"))
# A stream's content chunks carry the four graded categories only, as the service's streams do; its finish none.
SAFE_GRADED = b',"content_filter_results":' + dumps(
    {category: {"filtered": False, "severity": "safe"} for category in sorted(SEVERITY_CATEGORIES)})
SAFE_OPEN_CHOICE = SAFE_GRADED + OPEN_CHOICE
EMPTY = b',"content_filter_results":{}'
PROMPT_RESULTS = b'"prompt_filter_results":' + dumps([{"prompt_index": 0, "content_filter_results": filter_results("prompt")}])
PROMPT_CHUNK = b'data: {"choices":[],"created":0,"id":"","model":"","object":"",' + PROMPT_RESULTS + b"}\n\n"


def _filtered(reply: Reply) -> bytes:
    """The completion's results when a content filter cut it off."""
    if reply.openai_finish() != "content_filter":
        return SAFE
    found = reply.filtered or (DEFAULT_FILTER["category"], DEFAULT_FILTER["severity"])
    return b',"content_filter_results":' + dumps(filter_results("completion", found))


def render_error(status: int, message: str, *, param: str | None = None, code: str | None = None,
                 error_type: str | None = None, request_id: str | None = None, details: dict | None = None) -> dict:
    """Azure's error bodies: a filtered prompt's 400 with its `innererror`; the model's validation errors in
    OpenAI's shape, as Azure passes them on; and the service's own (401, 404, 429, 5xx...) as `{code, message}`,
    the code being the status."""
    if details is not None:
        return {"error": {"message": message, "type": None, "param": param, "code": code, "status": status,
                          "innererror": details}}
    if status in VALIDATION_STATUSES and code is None:
        return openai_chat.render_error(status, message, param=param, error_type=error_type)
    return {"error": {"code": AZURE_CODES.get(code, code) if code else str(status), "message": message}}


class AzureFormat:
    """One Azure wire format: a Provider (providers/base.py) made of the OpenAI module `base`, answering as
    provider `azure` (what an entry's `provider:` names), annotated when `annotated` and the setting say so."""

    NAME = NAME

    def __init__(self, base: ModuleType, *, annotated: bool) -> None:
        self.base = base
        self.ENDPOINT = base.ENDPOINT
        self.annotated = annotated
        self.new_ids = getattr(base, "new_ids", None)
        self.render_stream_error = base.render_stream_error if hasattr(base, "render_stream_error") else \
            openai_chat.render_stream_error

    render_error = staticmethod(render_error)
    filter_details = staticmethod(filter_details)

    def parse(self, data: dict) -> ChatRequest:
        parsed = self.base.parse(data)
        # The request was just made and nothing holds it yet: name its provider in place (a dataclasses.replace
        # of its twenty fields would cost as much as a quarter of the parsing).
        object.__setattr__(parsed, "provider", NAME)
        return parsed

    def _annotating(self) -> bool:
        return self.annotated and settings.MOCKLLM_AZURE_CONTENT_FILTER_RESULTS

    def render_json(self, request: ChatRequest, match: Match, ids: ResponseIds) -> bytes:
        body = self.base.render_json(request, match, ids)
        if not self._annotating():
            return body
        body = body.replace(CLOSED_CHOICE, _filtered(match.reply) + CLOSED_CHOICE)
        return body[:-1] + b"," + PROMPT_RESULTS + b"}"

    def render_stream(self, request: ChatRequest, match: Match, ids: ResponseIds, chunk: Any = "char") -> Iterator[bytes]:
        """The OpenAI stream after a first chunk with no choices that carries the prompt's results; each choice
        chunk carries the completion's results (the graded categories; empty on its finish, unless a filter cut
        the answer off)."""
        if not self._annotating():
            yield from self.base.render_stream(request, match, ids, chunk)
            return
        finish = _filtered(match.reply) if match.reply.openai_finish() == "content_filter" else EMPTY
        yield PROMPT_CHUNK
        if self.base is openai_chat:  # its hook adds the annotations as it renders (splicing them in costs more)
            yield from openai_chat.render_stream(request, match, ids, chunk, open_annotation=SAFE_GRADED,
                                                 finish_annotation=finish)
            return
        finished = finish + CLOSED_CHOICE
        for event in self.base.render_stream(request, match, ids, chunk):
            yield event.replace(OPEN_CHOICE, SAFE_OPEN_CHOICE).replace(CLOSED_CHOICE, finished)


chat = AzureFormat(openai_chat, annotated=True)
completions = AzureFormat(openai_completions, annotated=True)
responses = AzureFormat(openai_responses, annotated=False)  # Azure's Responses API carries no filter annotations
embeddings = AzureFormat(openai_embeddings, annotated=False)
