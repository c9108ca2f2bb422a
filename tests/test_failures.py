"""Failures on demand through the official SDKs: error classes, retry-after, broken streams, rate limits."""
from __future__ import annotations

import json
import time

import anthropic
import httpx
import openai
import pytest

from .support import anthropic_client, make_server, openai_client, wait_for

RESPONSES = """
responses:
  - match: "what is 2+2?"
    response: "2+2 equals 9."
  - match: "always busy"
    error: {status: 429, retry_after: 0.4, message: "Slow down, this prompt always fails."}
  - match: "paced answer"
    timing: {chunks_per_second: 100, chunk: word}
    response: "one two three four five"
  - match: "broken answer"
    stream_error: {mode: error, after_chunks: 2}
    response: "This answer breaks after two chunks."
settings:
  rate_limits: {requests_per_minute: 120}
  models:
    "flaky-*":
      stream_error: {mode: no_done}
"""
OPENAI_CLASSES = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
                  404: "NotFoundError", 408: "APIStatusError", 409: "ConflictError", 413: "APIStatusError",
                  422: "UnprocessableEntityError", 429: "RateLimitError", 500: "InternalServerError",
                  502: "InternalServerError", 503: "InternalServerError", 504: "InternalServerError"}
ANTHROPIC_CLASSES = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
                     404: "NotFoundError", 408: "RequestTimeoutError", 409: "ConflictError",
                     413: "ContentTooLargeError", 422: "UnprocessableEntityError", 429: "RateLimitError",
                     500: "InternalServerError", 502: "InternalServerError", 503: "ServiceUnavailableError",
                     504: "GatewayTimeoutError", 529: "OverloadedError"}
QUESTION = [{"role": "user", "content": "what is 2+2?"}]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = make_server(tmp_path_factory.mktemp("failures"), responses=RESPONSES, MOCKLLM_STALL_SECONDS="30").start()
    yield server
    server.stop(wait=False)


def oa(srv, **options):
    return openai_client(srv, strict=False, **options)


def an(srv, **options):
    return anthropic_client(srv, strict=False, **options)


@pytest.mark.parametrize("status", sorted(OPENAI_CLASSES))
def test_each_error_status_through_the_openai_sdk(srv, status):
    with pytest.raises(openai.APIStatusError) as caught:
        oa(srv, api_key=f"key-{status}").chat.completions.create(
            model="mock-llm", messages=QUESTION, extra_headers={"X-Mock-Status": str(status)})
    error = caught.value
    assert type(error).__name__ == OPENAI_CLASSES[status] and error.status_code == status
    assert error.request_id.startswith("req_") and "X-Mock-Status" in error.body["message"]
    if status == 429:
        assert error.response.headers["retry-after-ms"] == "1000"
        assert error.response.headers["x-ratelimit-remaining-requests"] == "0"


@pytest.mark.parametrize("status", sorted(ANTHROPIC_CLASSES))
def test_each_error_status_through_the_anthropic_sdk(srv, status):
    with pytest.raises(anthropic.APIStatusError) as caught:
        an(srv, api_key=f"key-{status}").messages.create(model=f"mock-error-{status}", max_tokens=8, messages=QUESTION)
    error = caught.value
    assert type(error).__name__ == ANTHROPIC_CLASSES[status] and error.status_code == status
    assert error.request_id.startswith("req_") and error.body["type"] == "error"
    if status == 529:
        assert error.body["error"]["type"] == "overloaded_error"


def test_an_entry_that_always_fails_says_when_to_retry(srv):
    with pytest.raises(openai.RateLimitError) as caught:
        oa(srv, api_key="entry-error").chat.completions.create(
            model="m", messages=[{"role": "user", "content": "always busy"}])
    assert caught.value.body["message"] == "Slow down, this prompt always fails."
    assert caught.value.response.headers["retry-after-ms"] == "400"


def test_with_retries_on_the_sdks_wait_what_retry_after_says(srv):
    client = oa(srv, api_key="retrying-openai", max_retries=2)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="m", messages=QUESTION,
                                       extra_headers={"X-Mock-Status": "429", "X-Mock-Retry-After": "0.3"})
    assert time.monotonic() - started >= 0.6  # two waits of 0.3 s
    started = time.monotonic()
    with pytest.raises(anthropic.RateLimitError):
        an(srv, api_key="retrying-anthropic", max_retries=1).messages.create(
            model="m", max_tokens=8, messages=[{"role": "user", "content": "always busy"}])
    assert time.monotonic() - started >= 0.4
    # the openai client's three attempts, each logged (the line is written as the answer goes out)
    wait_for(lambda: sum(1 for entry in srv.log_lines() if entry.get("mock_error") == 429 and entry.get("mock_error_source")
                         and entry.get("path") == "/v1/chat/completions" and entry.get("status") == 429) >= 3)


def test_x_should_retry_false_stops_the_sdk_retrying(srv):
    sent = []
    http_client = httpx.Client(event_hooks={"request": [sent.append]})
    with pytest.raises(openai.InternalServerError) as caught:
        oa(srv, api_key="no-retry", max_retries=3, http_client=http_client).chat.completions.create(
            model="m", messages=QUESTION, extra_headers={"X-Mock-Status": "503", "X-Mock-Should-Retry": "false"})
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(sent) == 1  # it gave up at once: no retry


def test_a_client_that_retries_too_early_is_logged(srv):
    headers = {"X-Mock-Status": "429", "X-Mock-Retry-After": "5", "Authorization": "Bearer impatient"}
    started = time.monotonic()
    for _ in range(2):
        response = httpx.post(f"{srv.url}/v1/chat/completions", headers=headers, json={"model": "m", "messages": QUESTION})
        assert response.status_code == 429
    between_ms = (time.monotonic() - started) * 1000  # at least the time between the two requests
    wait_for(lambda: srv.log_events("early_retry"))
    assert 5000 - between_ms <= srv.log_events("early_retry")[-1]["early_ms"] <= 5000
    assert "impatient" not in srv.log()  # the key itself is never logged


def test_the_mid_stream_error_modes_through_the_sdks(srv):
    with pytest.raises(openai.APIError) as caught:
        list(oa(srv).chat.completions.create(model="m", messages=QUESTION, stream=True,
                                             extra_headers={"X-Mock-Stream-Error": "error; after_chunks=3"}))
    assert not isinstance(caught.value, openai.APIStatusError)
    with pytest.raises(anthropic.APIStatusError) as caught:
        with an(srv).messages.stream(model="m", max_tokens=8, messages=[{"role": "user", "content": "broken answer"}]) as s:
            s.get_final_message()
    assert caught.value.body["type"] == "error"


def test_a_dropped_connection_mid_stream(srv):
    received = []
    with pytest.raises(openai.APIConnectionError, match="Connection error") as caught:
        for chunk in oa(srv).chat.completions.create(model="m", messages=QUESTION, stream=True,
                                                     extra_headers={"X-Mock-Stream-Error": "disconnect; after_chunks=4"}):
            received.append(chunk)
    assert not isinstance(caught.value, openai.APITimeoutError)  # the connection was closed, not left hanging
    assert len(received) == 4


def test_a_stream_without_done_and_a_malformed_chunk(srv):
    raw = httpx.post(f"{srv.url}/v1/chat/completions", json={"model": "flaky-1", "stream": True, "messages": QUESTION})
    assert raw.status_code == 200 and b"[DONE]" not in raw.content and b'"finish_reason":"stop"' in raw.content
    chunks = list(oa(srv).chat.completions.create(model="flaky-1", messages=QUESTION, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "2+2 equals 9."
    received = []
    with pytest.raises(json.JSONDecodeError, match="Expecting value"):  # the SDK cannot parse the broken chunk
        for chunk in oa(srv).chat.completions.create(model="m", messages=QUESTION, stream=True,
                                                     extra_headers={"X-Mock-Stream-Error": "malformed; after_chunks=2"}):
            received.append(chunk)
    assert len(received) == 2


def test_a_stall_and_a_timeout_before_any_byte(srv):
    received = []
    with pytest.raises(openai.APITimeoutError):  # the chunks before the stall come at once
        for chunk in oa(srv, timeout=httpx.Timeout(3.0)).chat.completions.create(model="m", messages=QUESTION, stream=True,
                                                    extra_headers={"X-Mock-Stream-Error": "stall; after_chunks=3"}):
            received.append(chunk)
    assert len(received) == 3
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        oa(srv, timeout=httpx.Timeout(1.0)).chat.completions.create(model="m", messages=QUESTION, stream=True,
                                       extra_headers={"X-Mock-Stream-Error": "timeout"})
    assert time.monotonic() - started >= 1.0
    assert oa(srv).chat.completions.create(model="m", messages=QUESTION).choices[0].message.content == "2+2 equals 9."


def test_pacing_chunks_and_a_non_streamed_wait(srv):
    chunks = list(oa(srv).chat.completions.create(model="m", stream=True,
                                                  messages=[{"role": "user", "content": "paced answer"}]))
    words = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert words == ["one", " two", " three", " four", " five"]
    started = time.monotonic()
    reply = oa(srv).chat.completions.create(model="m", messages=QUESTION, extra_headers={"X-Mock-Timing": "ttft_ms=300"})
    assert reply.choices[0].message.content == "2+2 equals 9." and time.monotonic() - started >= 0.3


def test_a_bad_mock_header_is_a_clear_400(srv):
    with pytest.raises(openai.BadRequestError) as caught:
        oa(srv).chat.completions.create(model="m", messages=QUESTION, extra_headers={"X-Mock-Timing": "chunk=lines"})
    assert "X-Mock-Timing.chunk" in caught.value.body["message"]


def test_a_rate_limit_budget_drains_and_refills(srv):
    client = httpx.Client(base_url=srv.url, headers={"Authorization": "Bearer budget-test"})
    statuses, last_ok, refused = [], None, None
    started = time.monotonic()
    for _ in range(1000):  # 120 a minute, refilled as time passes: drain it however slowly we go
        response = client.post("/v1/chat/completions", json={"model": "m", "messages": QUESTION})
        statuses.append(response.status_code)
        if response.status_code == 200:
            last_ok = response
        else:
            refused = response
            break
    elapsed = time.monotonic() - started
    assert refused is not None and statuses[-1] == 429 and set(statuses[:-1]) == {200}
    # the whole budget, plus what refilled while draining it (one request every half second)
    assert 120 <= statuses.count(200) <= 120 + int(elapsed / 0.5) + 1
    assert last_ok.headers["x-ratelimit-limit-requests"] == "120"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    wait = float(refused.headers["retry-after-ms"]) / 1000
    assert 0 < wait <= 0.5  # 120 a minute: one more every half second
    time.sleep(wait + 0.05)
    assert client.post("/v1/chat/completions", json={"model": "m", "messages": QUESTION}).status_code == 200
    other = httpx.post(f"{srv.url}/v1/chat/completions", headers={"Authorization": "Bearer someone-else"},
                       json={"model": "m", "messages": QUESTION})
    assert other.status_code == 200  # budgets are per API key
