"""Record and replay: a request no entry answers goes to the real provider API once, and its answer is
recorded (canned/recordings.py) and answered from then on.

When recording is on (MOCKLLM_RECORD=miss or all, or a test run put into record mode through the
control API), `after_find` runs after the hand-written entries were looked up: a recording of the same
request answers it like any entry; otherwise the view answers with an `UpstreamResponse`, which the
API handler prepares (api/handler.py) before it sends anything: the request goes upstream with the
configured key (or the client's own), asking for identity encoding. A JSON answer is recorded, then
sent; a stream is passed to the client event by event as it arrives and recorded once it is complete
(a stream the upstream broke records nothing, and the client's connection is dropped the same way).
An error from the upstream is passed through as it is (status, body, retry-after and rate-limit
headers) and recorded nowhere; an upstream that cannot be reached gives a 502 naming its host.

Identical requests that miss at the same time make one upstream call (per process): the first goes
upstream, the others wait for it and are answered from its recording, or given the same error.
Only the server's settings say where requests go; no request header can.

Longer than 350 lines: forwarding, relaying a live stream, the single flight and the three endpoint
kinds (answers, embeddings, token counts) share one request's state, kept in one class.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse

from responses_app.api.record import RequestRecord, record_of
from responses_app.api.sse import StreamAborted
from responses_app.canned import recordings
from responses_app.canned.conversation import ChatRequest
from responses_app.canned.fields import EntryError
from responses_app.canned.index import CannedIndex
from responses_app.canned.matching import Entry, Match
from responses_app.models import SetKey
from responses_app.providers import openai_embeddings
from responses_app.providers.common import dumps
from responses_app.team.redaction import SECRET_HEADERS, redact_text

logger = logging.getLogger("mockllm.upstream")

# Request headers passed on to the upstream (never credentials; those are set apart, and never stored).
FORWARDED_HEADERS = ("content-type", "accept", "anthropic-version", "anthropic-beta", "openai-beta",
                     "openai-organization", "openai-project", "user-agent")
# Upstream answer headers passed back to the client.
PASSED_BACK = ("retry-after", "retry-after-ms", "x-should-retry")
PASSED_BACK_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
_background: set[asyncio.Task] = set()  # saves that must finish even when the client goes away
_flights: dict[tuple, asyncio.Future] = {}  # the upstream call under way, per (set, fingerprint)
# Calls just recorded: a request that missed before the recording was in the index, but got here after
# the call ended, is answered from it too (seconds since, outcome).
_recent: dict[tuple, tuple[float, Recorded]] = {}
RECENT_SECONDS = 5.0
_clients: dict[int, httpx.AsyncClient] = {}  # one connection pool per event loop


def record_mode(index: CannedIndex, test_id: str) -> str:
    """off, miss or all: the test run's own mode (control API) when it has one, else MOCKLLM_RECORD."""
    if test_id and index.record_modes:
        mode = index.record_modes.get(test_id)
        if mode:
            return mode
    return settings.MOCKLLM_RECORD


def upstream_of(provider: Any) -> tuple[str, str] | None:
    """(base URL, configured key) of the provider's upstream; None for a wire format not recorded."""
    name = getattr(provider, "NAME", "")
    if name == "openai":
        return settings.MOCKLLM_UPSTREAM_OPENAI, settings.MOCKLLM_UPSTREAM_OPENAI_KEY
    if name == "anthropic":
        return settings.MOCKLLM_UPSTREAM_ANTHROPIC, settings.MOCKLLM_UPSTREAM_ANTHROPIC_KEY
    return None


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        data = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _set_key(record: RequestRecord) -> SetKey:
    return ("", record.client.test_id)


def after_find(request: HttpRequest, provider: Any, parsed: ChatRequest, index: CannedIndex,
               match: Match) -> tuple[Match, HttpResponseBase | None]:
    """After the hand-written entries were looked up: the match to answer with (a recording's, when one
    answers a request they missed), or the response that forwards the request upstream."""
    record = record_of(request)
    mode = record_mode(index, record.client.test_id)
    as_recorded = request.META.get("HTTP_X_MOCK_TIMING", "").strip().lower() == "recorded"
    if as_recorded:  # a recording's own pace, not a timing the fault headers parse
        del request.META["HTTP_X_MOCK_TIMING"]
    if (match.entry is not None and mode != "all") or (mode == "off" and not index.has_recordings):
        return match, None
    fp = recordings.fingerprint(request.path, _body(request))
    if mode != "all":
        entry = index.recording_for(fp, record.client.scenario, record.client.test_id)
        if entry is not None:
            if as_recorded and entry.recorded_timing:
                entry = dataclasses.replace(entry, faults={**(entry.faults or {}), "timing": entry.recorded_timing})
            replayed = Match(entry, entry.replies[0], "recorded")
            record.match, record.output_tokens = replayed, replayed.output_tokens
            return replayed, None
    target = upstream_of(provider)
    if mode == "off" or target is None:
        return match, None
    record.match = dataclasses.replace(match, rule="upstream")  # the journal and log say where it went
    return match, UpstreamResponse(Forward(request, record, provider, parsed.endpoint, fp, _set_key(record),
                                           *target, parsed=parsed, mode=mode))


def embeddings(request: HttpRequest, parsed: openai_embeddings.EmbeddingsRequest,
               index: CannedIndex) -> dict[str, tuple[float, ...]] | HttpResponseBase:
    """The recorded vectors of the request's texts that no entry gives, or the response that forwards it."""
    record = record_of(request)
    mode = record_mode(index, record.client.test_id)
    if mode == "off" and not index.has_recordings:
        return {}
    body = _body(request)
    client = record.client
    found: dict[str, tuple[float, ...]] = {}
    missing = False
    for text in parsed.inputs:
        if mode != "all" and index.embedding_for(text, client.scenario, client.test_id) is not None:
            continue
        fp = recordings.embedding_fingerprint(request.path, parsed.model, body.get("dimensions"), text)
        entry = index.recording_for(fp, client.scenario, client.test_id) if mode != "all" else None
        if entry is not None and entry.embedding is not None:
            found[text] = entry.embedding
        else:
            missing = True
    if mode == "off" or not missing:
        return found
    return UpstreamResponse(Forward(request, record, openai_embeddings, "embeddings",
                                    recordings.fingerprint(request.path, body), _set_key(record),
                                    *upstream_of(openai_embeddings), embeddings=parsed, mode=mode))


def count_tokens(request: HttpRequest, provider: Any, parsed: ChatRequest, index: CannedIndex) -> HttpResponseBase | None:
    """A recorded token count for the request, or the response that forwards it; None to count here."""
    record = record_of(request)
    mode = record_mode(index, record.client.test_id)
    if mode == "off" and not index.has_recordings:
        return None
    fp = recordings.fingerprint(request.path, _body(request))
    entry = index.recording_for(fp, record.client.scenario, record.client.test_id) if mode != "all" else None
    if entry is not None:
        return _json(_count_body(entry, parsed))
    if mode == "off" or upstream_of(provider) is None:
        return None
    return UpstreamResponse(Forward(request, record, provider, "count_tokens", fp, _set_key(record),
                                    *upstream_of(provider), parsed=parsed, mode=mode))


def _count_body(entry: Entry, parsed: ChatRequest) -> bytes:
    return dumps({"input_tokens": entry.replies[0].usage.get("input_tokens", parsed.input_tokens)})


def _json(body: bytes, status: int = 200) -> StreamingHttpResponse:
    response = StreamingHttpResponse(_once(body), status=status, content_type="application/json")
    response["Content-Length"] = str(len(body))
    return response


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def http_client() -> httpx.AsyncClient:
    loop_id = id(asyncio.get_running_loop())
    client = _clients.get(loop_id)
    if client is None:
        timeout = httpx.Timeout(settings.MOCKLLM_UPSTREAM_TIMEOUT_SECONDS, connect=10.0)
        client = _clients[loop_id] = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)
    return client


def outgoing_headers(meta: dict[str, Any], family: str, key: str) -> tuple[dict[str, str], dict[str, str]]:
    """(the headers to send upstream, the same without credentials: what may be stored)."""
    headers = {}
    for name in FORWARDED_HEADERS:
        value = meta.get("CONTENT_TYPE" if name == "content-type" else "HTTP_" + name.upper().replace("-", "_"))
        if value:
            headers[name] = str(value)
    headers["accept-encoding"] = "identity"
    stored = dict(headers)
    if family == "anthropic":
        if key:
            headers["x-api-key"] = key
        elif meta.get("HTTP_X_API_KEY"):
            headers["x-api-key"] = meta["HTTP_X_API_KEY"]
        elif meta.get("HTTP_AUTHORIZATION"):
            headers["authorization"] = meta["HTTP_AUTHORIZATION"]
    elif key:
        headers["authorization"] = f"Bearer {key}"
    elif meta.get("HTTP_AUTHORIZATION"):
        headers["authorization"] = meta["HTTP_AUTHORIZATION"]
    return headers, stored


def passed_back(headers: httpx.Headers) -> dict[str, str]:
    return {name: value for name, value in headers.items()
            if name in PASSED_BACK or name.startswith(PASSED_BACK_PREFIXES)}


def stored_headers(headers: httpx.Headers) -> dict[str, str]:
    return {name: redact_text(value) for name, value in headers.items() if name not in SECRET_HEADERS}


# ---- outcomes of one upstream call, shared with the identical requests that waited for it ---------

@dataclass(frozen=True)
class Recorded:
    rows: list[tuple]


@dataclass(frozen=True)
class PassedThrough:
    status: int
    headers: dict[str, str]
    body: bytes
    content_type: str


class UpstreamResponse(StreamingHttpResponse):
    """The answer of a forwarded request: its status and headers are known only once the upstream
    answered, so the handler awaits `prepare()` before it sends them."""

    def __init__(self, job: Forward) -> None:
        super().__init__(self._content(), content_type="application/json")
        self.job = job
        self._parts: AsyncIterator[bytes] | None = None

    async def prepare(self) -> None:
        self._parts = await self.job.run(self)

    async def _content(self) -> AsyncIterator[bytes]:
        if self._parts is None:  # a caller that did not prepare (Django's test client): status stays 200
            await self.prepare()
        async for part in self._parts:
            yield part


@dataclass
class Forward:
    """One request on its way upstream (or waiting for an identical one that is)."""

    request: HttpRequest
    record: RequestRecord
    provider: Any
    kind: str  # chat, completions, responses, messages, embeddings or count_tokens
    fp: str
    set_key: SetKey
    base: str
    key: str
    parsed: ChatRequest | None = None
    embeddings: openai_embeddings.EmbeddingsRequest | None = None
    mode: str = "miss"
    started: float = field(default_factory=time.monotonic)

    @property
    def host(self) -> str:
        return urlsplit(self.base).netloc or self.base

    async def run(self, response: UpstreamResponse) -> AsyncIterator[bytes]:
        flight = (self.set_key, self.fp)
        waiting = _flights.get(flight)
        if waiting is not None:
            self.record.notes["upstream"] = "waited"
            return self.answer_with(response, await asyncio.shield(waiting))
        recent = _recent.get(flight) if self.mode == "miss" else None  # "all" asks upstream every time
        if recent is not None and time.monotonic() - recent[0] < RECENT_SECONDS:
            self.record.notes["upstream"] = "waited"
            return self.answer_with(response, recent[1])
        future = _flights[flight] = asyncio.get_running_loop().create_future()
        try:
            return await self.lead(response, future)
        except BaseException:
            self.settle(future, None)
            raise

    def settle(self, future: asyncio.Future, outcome: Recorded | PassedThrough | None) -> None:
        if _flights.get((self.set_key, self.fp)) is future:
            del _flights[(self.set_key, self.fp)]
        if isinstance(outcome, Recorded) and not future.done():
            now = time.monotonic()
            if len(_recent) > 1000:
                for key in [key for key, (at, _) in _recent.items() if now - at >= RECENT_SECONDS]:
                    del _recent[key]
            _recent[(self.set_key, self.fp)] = (now, outcome)
        if not future.done():
            future.set_result(outcome)

    async def lead(self, response: UpstreamResponse, future: asyncio.Future) -> AsyncIterator[bytes]:
        headers, self.sent_headers = outgoing_headers(self.request.META, self.provider.NAME, self.key)
        url = self.base + self.request.get_full_path()
        client = http_client()
        try:
            upstream = await client.send(client.build_request("POST", url, content=self.request.body, headers=headers),
                                         stream=True)
        except httpx.HTTPError as exc:
            logger.warning("the upstream API at %s could not be reached: %s", self.host, type(exc).__name__,
                           extra={"event": "upstream_unreachable", "upstream": self.host,
                                  "request_id": self.record.request_id})
            outcome = self.unreachable(f"could not be reached ({type(exc).__name__})")
            self.settle(future, outcome)
            return self.answer_with(response, outcome)
        content_type = upstream.headers.get("content-type", "application/json")
        if upstream.status_code != 200 or "text/event-stream" not in content_type:
            try:
                body = await upstream.aread()
            except httpx.HTTPError as exc:
                outcome = self.unreachable(f"broke its answer ({type(exc).__name__})")
                self.settle(future, outcome)
                return self.answer_with(response, outcome)
            finally:
                await upstream.aclose()
            outcome = PassedThrough(upstream.status_code, passed_back(upstream.headers), body, content_type)
            if upstream.status_code == 200:
                self.record.notes["upstream"] = "recorded"
                rows = await self.save(body, None, [time.monotonic()], upstream.headers)
                outcome = Recorded(rows) if rows else outcome
            else:
                self.record.notes["upstream"] = f"passed_through:{upstream.status_code}"
            self.settle(future, outcome)
            return self.pass_through(response, PassedThrough(upstream.status_code, passed_back(upstream.headers),
                                                             body, content_type))
        response.status_code = 200
        response["Content-Type"] = content_type
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        for name, value in passed_back(upstream.headers).items():
            response[name] = value
        self.record.notes["upstream"] = "recorded"
        return self.relay(upstream, future)

    async def relay(self, upstream: httpx.Response, future: asyncio.Future) -> AsyncIterator[bytes]:
        """The upstream's events as they arrive; recorded once the stream is complete."""
        reader = recordings.SSEReader()
        times: list[float] = []
        complete = False
        try:
            async for chunk in upstream.aiter_bytes():
                now = time.monotonic()
                for event in reader.feed(chunk):
                    times.append(now)
                    if not complete and recordings.completes(self.kind, event):
                        complete = True  # saved even if the client leaves right after this event
                        self.spawn(self.save_stream(reader.events, times, upstream.headers, future))
                yield chunk
        except httpx.HTTPError as exc:
            self.record.stream_end = "upstream_broken"
            logger.warning("the upstream API at %s broke the stream: %s", self.host, type(exc).__name__,
                           extra={"event": "upstream_broken", "upstream": self.host,
                                  "request_id": self.record.request_id})
            if not complete:
                self.settle(future, self.unreachable(f"broke the stream ({type(exc).__name__})"))
            raise StreamAborted from None  # the client sees the break too
        finally:
            if not complete:
                self.settle(future, self.unreachable("ended the stream before it was complete"))
            self.spawn(upstream.aclose())
        if not complete:
            self.record.stream_end = "upstream_incomplete"

    @staticmethod
    def spawn(work: Any) -> None:
        task = asyncio.ensure_future(work)
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def save_stream(self, events: list, times: list[float], headers: httpx.Headers,
                          future: asyncio.Future) -> None:
        rows = None
        try:
            rows = await self.save(None, list(events), list(times), headers)
        finally:
            self.settle(future, Recorded(rows) if rows else None)

    async def save(self, body: bytes | None, events: list | None, times: list[float],
                   headers: httpx.Headers) -> list[tuple] | None:
        """Store the answer as recordings (in a worker thread: the database is not touched on the event loop)."""
        try:
            batch = self.recordings(body, events, times, headers)
        except (EntryError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("the upstream's answer could not be recorded: %s", exc,
                           extra={"event": "recording_failed", "request_id": self.record.request_id})
            return None
        return await sync_to_async(_save_in_thread, thread_sensitive=False)(batch, self.set_key)

    def recordings(self, body: bytes | None, events: list | None, times: list[float],
                   headers: httpx.Headers) -> list[recordings.Recording]:
        raw = body.decode("utf-8", "replace") if body is not None else b"".join(e.raw for e in events).decode(
            "utf-8", "replace")
        exchange = {
            "fingerprint": self.fp, "upstream": self.base, "method": "POST", "path": self.request.get_full_path(),
            "request_headers": self.sent_headers, "request_body": redact_text(self.request.body.decode("utf-8", "replace")),
            "status": 200, "response_headers": stored_headers(headers), "response_body": redact_text(raw),
            "streamed": events is not None, "ttft_ms": round((times[0] - self.started) * 1000, 1) if times else None,
            "gaps_ms": [round((b - a) * 1000, 1) for a, b in zip(times, times[1:], strict=False)],
            "duration_ms": round((time.monotonic() - self.started) * 1000, 1),
        }
        model = self.parsed.model if self.parsed else self.embeddings.model if self.embeddings else ""
        name = f"recorded {self.kind} {model}".strip()
        if self.kind == "embeddings":
            data = _body(self.request)
            vectors = recordings.vectors_of(body or b"{}")
            return [recordings.Recording(text, recordings.embedding_entry(
                recordings.embedding_fingerprint(self.request.path, self.embeddings.model, data.get("dimensions"), text),
                text, name, vector), exchange if i == 0 else None)
                for i, (text, vector) in enumerate(zip(self.embeddings.inputs, vectors, strict=True))]
        if self.kind == "count_tokens":
            reply = {"text": "", "usage": {"input_tokens": int(orjson.loads(body or b"{}")["input_tokens"])}}
        else:
            reply = recordings.reply_of(self.kind, body, events or ())
        prompt = self.parsed.prompt if self.parsed else ""
        timing = recordings.recorded_timing(reply, exchange["ttft_ms"], times[-1] - times[0] if events else 0.0)
        return [recordings.Recording(prompt, recordings.answer_entry(self.fp, prompt, name, reply, timing),
                                     exchange)]

    def unreachable(self, what: str) -> PassedThrough:
        message = f"The upstream API at {self.host} {what}; the request was not recorded."
        body = dumps(self.provider.render_error(502, message, request_id=self.record.request_id))
        self.record.notes.setdefault("upstream", "unreachable")
        return PassedThrough(502, {}, body, "application/json")

    def answer_with(self, response: UpstreamResponse, outcome: Recorded | PassedThrough | None) -> AsyncIterator[bytes]:
        if isinstance(outcome, Recorded):
            return self.from_recording(response, [Entry.build(*row) for row in outcome.rows])
        if outcome is None:
            outcome = self.unreachable("did not complete the answer the same request was waiting for")
        return self.pass_through(response, outcome)

    def pass_through(self, response: UpstreamResponse, outcome: PassedThrough) -> AsyncIterator[bytes]:
        response.status_code = outcome.status
        response["Content-Type"] = outcome.content_type
        response["Content-Length"] = str(len(outcome.body))
        for name, value in outcome.headers.items():
            response[name] = value
        return _once(outcome.body)

    def from_recording(self, response: UpstreamResponse, entries: list[Entry]) -> AsyncIterator[bytes]:
        """An answer rendered from the recording the identical request made."""
        if self.kind == "embeddings":
            by_text = {entry.prompt: entry.embedding for entry in entries}
            vectors = [list(by_text.get(text.strip() or "(empty text)") or
                            openai_embeddings.vector_for(text, self.embeddings.dimensions))
                       for text in self.embeddings.inputs]
            body, content_type = openai_embeddings.render_json(self.embeddings, vectors), "application/json"
        elif self.kind == "count_tokens":
            body, content_type = _count_body(entries[0], self.parsed), "application/json"
        else:
            match = Match(entries[0], entries[0].replies[0], "recorded")
            ids = self.record.ids = self.provider.new_ids()
            self.record.match, self.record.output_tokens = match, match.output_tokens
            if self.parsed.stream:
                body = b"".join(self.provider.render_stream(self.parsed, match, ids, "char"))
                content_type = "text/event-stream; charset=utf-8"
                self.record.stream_end = "completed"
            else:
                body, content_type = self.provider.render_json(self.parsed, match, ids), "application/json"
        return self.pass_through(response, PassedThrough(200, {}, body, content_type))


def _save_in_thread(batch: list[recordings.Recording], set_key: SetKey) -> list[tuple]:
    try:
        return recordings.save(batch, set_key)
    finally:
        connections.close_all()
