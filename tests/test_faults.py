"""Failures and timing on demand, without HTTP: validation, precedence, budgets and the pacing schedule."""
import asyncio
import types

import pytest

from responses_app.api import sse
from responses_app.api.faults import plan_for, random_failures
from responses_app.api.rate_limits import RateLimiter, seconds_text
from responses_app.api.record import RequestRecord
from responses_app.canned.fault_schema import header_params, parse_error, parse_stream_error, parse_timing
from responses_app.canned.fields import EntryError
from responses_app.providers.chunking import split_text, stream_seconds

TEXTS = ["The sky is blue.", "  leading and trailing  ", "emoji 🙂 and 日本語, NFC é vs NFD é", "", "one"]


@pytest.mark.parametrize("chunk", ["char", "word", "token", 3])
@pytest.mark.parametrize("text", TEXTS)
def test_every_chunking_joins_back_into_the_text(text, chunk):
    assert "".join(split_text(text, chunk)) == text


def test_chunk_sizes():
    assert split_text("Hi there, you", "word") == ["Hi", " there,", " you"]
    assert split_text("Hi there, you", "token") == ["Hi", " there", ",", " you"]
    assert split_text("abcdefg", 3) == ["abc", "def", "g"]


def test_timing_validation_names_the_field():
    assert parse_timing({"ttft_ms": 200, "chunks_per_second": 50, "chunk": "word", "jitter": 0.1, "seed": 7}) == {
        "ttft_ms": 200.0, "chunks_per_second": 50.0, "chunk": "word", "jitter": 0.1, "seed": 7}
    for bad, words in [({"chunk": "line"}, "must be char, word, token"), ({"jitter": 2}, "from 0 to 1"),
                       ({"chunks_per_second": 5, "tokens_per_second": 5}, "one pace"), ({"tempo": 1}, "unknown field")]:
        with pytest.raises(EntryError, match=words):
            parse_timing(bad)


def test_error_and_stream_error_validation():
    assert parse_error({"status": "429", "retry_after": "1.5", "should_retry": "false"}) == {
        "status": 429, "retry_after": 1.5, "should_retry": False}
    with pytest.raises(EntryError, match="from 400 to 599"):
        parse_error({"status": 200})
    with pytest.raises(EntryError, match="must be one of error, disconnect"):
        parse_stream_error({"mode": "explode"})
    assert header_params("disconnect; after_chunks=5") == {"mode": "disconnect", "after_chunks": "5"}


def test_headers_beat_the_entry_which_beats_model_rules_which_beat_settings():
    settings = {"timing": {"ttft_ms": 1.0}, "models": {"slow-*": {"timing": {"ttft_ms": 2.0, "chunks_per_second": 5.0}}}}
    entry = {"timing": {"ttft_ms": 3.0}}
    assert plan_for({}, "gpt", None, settings).timing == {"ttft_ms": 1.0}
    assert plan_for({}, "slow-1", None, settings).timing == {"ttft_ms": 2.0, "chunks_per_second": 5.0}
    assert plan_for({}, "slow-1", entry, settings).timing == {"ttft_ms": 3.0, "chunks_per_second": 5.0}
    headers = {"x-mock-timing": "ttft_ms=4; chunk=word"}
    assert plan_for(headers, "slow-1", entry, settings).timing == {"ttft_ms": 4.0, "chunks_per_second": 5.0, "chunk": "word"}


def test_the_original_servers_lag_settings_keep_their_meaning():
    assert plan_for({}, "m", None, {"lag_enabled": True, "lag_factor": 25}).timing == {
        "characters_per_second": 25.0, "jitter": 0.2}
    assert plan_for({}, "m", None, {"lag_enabled": False, "lag_factor": 25}).timing == {}


def test_a_model_named_mock_error_nnn_fails_with_that_status():
    assert plan_for({}, "mock-error-503", None, {}).error == {"status": 503}
    assert plan_for({}, "mock-error-200", None, {}).error is None


def test_random_failures_follow_the_seed():
    settings = {"failures": {"rate": 0.3, "statuses": [500, 503], "seed": 11}}

    def run() -> list:
        random_failures.reset()
        return [(plan_for({}, "m", None, settings).error or {}).get("status") for _ in range(200)]

    first, second = run(), run()
    assert first == second
    assert 30 < sum(1 for s in first if s) < 90 and {s for s in first if s} == {500, 503}


def test_the_stream_error_header_value_1_means_a_mid_stream_error():
    assert plan_for({"x-mock-stream-error": "1"}, "m", None, {}).stream_error == {"mode": "error"}
    assert plan_for({"x-mock-stream-error": "stall; after_ms=250"}, "m", None, {}).stream_error == {
        "mode": "stall", "after_ms": 250.0}


def test_a_budget_drains_refuses_with_the_wait_and_refills():
    limiter = RateLimiter()
    limits = {"requests_per_minute": 60, "tokens_per_minute": 1000}
    budgets = [limiter.spend("k", limits, 10, now=100.0) for _ in range(60)]
    assert budgets[-1].remaining_requests == 0 and budgets[-1].retry_after is None
    assert budgets[0].remaining_tokens == 990 and budgets[-1].remaining_tokens == 400
    refused = limiter.spend("k", limits, 10, now=100.0)
    assert refused.retry_after == pytest.approx(1.0)  # one request comes back each second
    assert limiter.spend("k", limits, 10, now=101.0).retry_after is None
    assert limiter.spend("other", limits, 10, now=101.0).remaining_requests == 59  # budgets are per client
    tokens = RateLimiter().spend("t", {"tokens_per_minute": 60}, 120, now=0.0)
    assert tokens.retry_after is None and tokens.remaining_tokens == 0
    assert RateLimiter().spend("t", {"tokens_per_minute": 60}, 1, now=0.0).retry_after is None


def test_early_retries_are_noticed():
    limiter = RateLimiter()
    limiter.note_retry_after("k", 2.0, now=10.0)
    assert limiter.early_by("k", now=10.5) == pytest.approx(1.5)
    limiter.note_retry_after("k", 2.0, now=10.0)
    assert limiter.early_by("k", now=12.5) is None


def test_durations_and_reset_texts():
    assert stream_seconds({"chunks_per_second": 50}, 500, 0, 0) == 10
    assert stream_seconds({"characters_per_second": 10}, 3, 25, 0) == 2.5
    assert stream_seconds({"tokens_per_second": 4}, 3, 25, 8) == 2
    assert stream_seconds({}, 3, 25, 8) == 0
    assert (seconds_text(0.5), seconds_text(20), seconds_text(360)) == ("0.5s", "20s", "6m0s")


class VirtualClock:
    """Stands in for the event loop's clock and asyncio.sleep: time passes only when sleeping."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0)


def run_paced(monkeypatch, events, **kw) -> tuple[list[tuple[float, bytes]], RequestRecord]:
    clock = VirtualClock()
    fake = types.SimpleNamespace(get_running_loop=lambda: clock, sleep=clock.sleep,
                                 CancelledError=asyncio.CancelledError)
    monkeypatch.setattr(sse, "asyncio", fake)
    log = RequestRecord()

    async def collect():
        return [(clock.now, part) async for part in sse.deliver_events(events, record=log,
                                                                 error_event=lambda m: b"ERR", **kw)]

    return asyncio.run(collect()), log


def test_a_stream_that_fell_behind_sends_what_is_due_in_one_write(monkeypatch):
    clock = VirtualClock()

    async def slow_sleep(seconds: float) -> None:  # every wake-up comes 50 ms late, as on a busy server
        clock.now += max(seconds, 0) + 0.05

    fake = types.SimpleNamespace(get_running_loop=lambda: clock, sleep=slow_sleep, CancelledError=asyncio.CancelledError)
    monkeypatch.setattr(sse, "asyncio", fake)

    async def collect():
        return [(clock.now, p) async for p in sse.deliver_events([b"x"] * 101, record=RequestRecord(), error_event=bytes, duration=1.0)]

    sent = asyncio.run(collect())
    assert b"".join(p for _, p in sent) == b"x" * 101
    assert len(sent) < 30 and sent[-1][0] <= 1.1  # fewer, fuller writes; still on time overall


def test_a_paced_stream_keeps_its_schedule(monkeypatch):
    events = [b"%d" % i for i in range(501)]
    sent, log = run_paced(monkeypatch, events, ttft=0.25, duration=10.0)
    assert [part for _, part in sent] == events
    assert sent[0][0] == pytest.approx(0.25) and sent[-1][0] == pytest.approx(10.25)
    assert sent[250][0] == pytest.approx(5.25)  # evenly spread: no drift
    assert log.stream_end == "completed"


def test_jitter_varies_the_gaps_the_same_way_for_a_seed(monkeypatch):
    events = [b"x"] * 50
    first, _ = run_paced(monkeypatch, events, duration=1.0, jitter=0.5, seed=3)
    second, _ = run_paced(monkeypatch, events, duration=1.0, jitter=0.5, seed=3)
    gaps = [b[0] - a[0] for a, b in zip(first, first[1:])]
    assert [t for t, _ in first] == [t for t, _ in second]
    assert min(gaps) < 1 / 49 < max(gaps) and all(g > 0 for g in gaps)


@pytest.mark.parametrize(("mode", "last"), [("error", b"ERR"), ("malformed", sse.MALFORMED_EVENT)])
def test_a_broken_stream_stops_after_the_chunks_asked_for(monkeypatch, mode, last):
    sent, log = run_paced(monkeypatch, [b"e%d" % i for i in range(10)], fault={"mode": mode, "after_chunks": 3})
    assert b"".join(part for _, part in sent) == b"e0e1e2" + last
    assert log.stream_end == f"fault:{mode}"


def test_no_done_drops_only_the_final_event(monkeypatch):
    sent, _ = run_paced(monkeypatch, [b"a", b"b", b"data: [DONE]\n\n"], fault={"mode": "no_done"})
    assert b"".join(part for _, part in sent) == b"ab"


def test_a_stall_after_some_milliseconds_keeps_the_stream_open(monkeypatch):
    sent, log = run_paced(monkeypatch, [b"e%d" % i for i in range(100)], duration=1.0,
                          fault={"mode": "stall", "after_ms": 500}, stall_seconds=60)
    assert 45 <= len(sent) <= 52 and sent[-1][0] <= 0.5 and sent[-1][1] != b"e99"
    assert log.stream_end == "fault:stall"


def test_disconnect_raises_to_drop_the_connection(monkeypatch):
    with pytest.raises(sse.StreamAborted):
        run_paced(monkeypatch, [b"a", b"b", b"c"], fault={"mode": "disconnect", "after_chunks": 1})
