"""Failures and timing on demand: what to break or slow down for one request, decided in one place.

Sources, strongest first: the request's X-Mock-* headers, the matched entry's options, the
`models:` rules of the responses file's `settings:` (by model glob), then its global settings.
"""
from __future__ import annotations

import fnmatch
import logging
import math
import random
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping

from responses_app.canned.entries import EntryError, line_of, mapping, plain, text, unknown_keys

TIMING_RATES = ("chunks_per_second", "characters_per_second", "tokens_per_second")
TIMING_KEYS = ("ttft_ms", *TIMING_RATES, "chunk", "jitter", "seed")
ERROR_KEYS = ("status", "message", "type", "code", "retry_after", "should_retry")
STREAM_FAULTS = ("error", "disconnect", "no_done", "malformed", "stall", "timeout")
STREAM_FAULT_KEYS = ("mode", "after_chunks", "after_ms")
FAILURE_KEYS = ("rate", "statuses", "seed")
RATE_LIMIT_KEYS = ("requests_per_minute", "tokens_per_minute")
MODEL_RULE_KEYS = ("timing", "error", "stream_error", "failures")
ERROR_MODEL = re.compile(r"^mock-error-(\d{3})$")


# -- validation (the responses file, the admin, and headers share it) -------------------------------

def _number(value: Any, field: str, *, minimum: float = 0.0, maximum: float | None = None,
            integer: bool = False) -> float:
    number = plain(value)
    if isinstance(number, str):
        try:
            number = float(number) if not integer else int(number)
        except ValueError:
            raise EntryError(field, f"`{field}` must be a number, not {number!r}", line_of(value)) from None
    if isinstance(number, bool) or not isinstance(number, (int, float)) or (integer and not float(number).is_integer()):
        raise EntryError(field, f"`{field}` must be a {'whole ' if integer else ''}number", line_of(value))
    if number < minimum or (maximum is not None and number > maximum):
        bounds = f"at least {minimum:g}" if maximum is None else f"from {minimum:g} to {maximum:g}"
        raise EntryError(field, f"`{field}` must be {bounds}; got {number:g}", line_of(value))
    return int(number) if integer else float(number)


def _bool(value: Any, field: str) -> bool:
    flag = plain(value)
    if isinstance(flag, str) and flag.lower() in ("true", "false", "1", "0", "yes", "no"):
        return flag.lower() in ("true", "1", "yes")
    if not isinstance(flag, bool):
        raise EntryError(field, f"`{field}` must be true or false", line_of(value))
    return flag


def _mapping(value: Any, field: str, allowed: tuple[str, ...]) -> dict:
    unknown_keys(mapping(value, field), allowed, field)
    return value


def parse_timing(value: Any, field: str = "timing") -> dict[str, Any]:
    spec = _mapping(value, field, TIMING_KEYS)
    timing: dict[str, Any] = {}
    if "ttft_ms" in spec:
        timing["ttft_ms"] = _number(spec["ttft_ms"], f"{field}.ttft_ms")
    rates = [k for k in TIMING_RATES if k in spec]
    if len(rates) > 1:
        raise EntryError(field, f"`{field}` takes one pace: {' or '.join(TIMING_RATES)}")
    for rate in rates:
        timing[rate] = _number(spec[rate], f"{field}.{rate}", minimum=0.001)
    if "chunk" in spec:
        chunk = plain(spec["chunk"])
        if isinstance(chunk, str) and chunk.isdigit():
            chunk = int(chunk)
        if chunk not in ("char", "word", "token") and not (isinstance(chunk, int) and not isinstance(chunk, bool) and chunk > 0):
            raise EntryError(f"{field}.chunk", f"`{field}.chunk` must be char, word, token or a number of characters",
                             line_of(spec["chunk"]))
        timing["chunk"] = chunk
    if "jitter" in spec:
        timing["jitter"] = _number(spec["jitter"], f"{field}.jitter", maximum=1)
    if "seed" in spec:
        timing["seed"] = _number(spec["seed"], f"{field}.seed", integer=True)
    return timing


def parse_error(value: Any, field: str = "error") -> dict[str, Any]:
    spec = _mapping(value, field, ERROR_KEYS)
    if "status" not in spec:
        raise EntryError(f"{field}.status", f"`{field}.status` is required (an HTTP status from 400 to 599)")
    error: dict[str, Any] = {"status": _number(spec["status"], f"{field}.status", minimum=400, maximum=599, integer=True)}
    for key in ("message", "type", "code"):
        if key in spec:
            error[key] = text(spec[key], f"{field}.{key}")
    if "retry_after" in spec:
        error["retry_after"] = _number(spec["retry_after"], f"{field}.retry_after")
    if "should_retry" in spec:
        error["should_retry"] = _bool(spec["should_retry"], f"{field}.should_retry")
    return error


def parse_stream_error(value: Any, field: str = "stream_error") -> dict[str, Any]:
    spec = _mapping(value, field, STREAM_FAULT_KEYS)
    mode = text(spec.get("mode"), f"{field}.mode")
    if mode not in STREAM_FAULTS:
        raise EntryError(f"{field}.mode", f"`{field}.mode` must be one of {', '.join(STREAM_FAULTS)}; got {mode!r}",
                         line_of(spec.get("mode")))
    fault: dict[str, Any] = {"mode": mode}
    if "after_chunks" in spec:
        fault["after_chunks"] = _number(spec["after_chunks"], f"{field}.after_chunks", integer=True)
    if "after_ms" in spec:
        fault["after_ms"] = _number(spec["after_ms"], f"{field}.after_ms")
    return fault


def parse_failures(value: Any, field: str = "failures") -> dict[str, Any]:
    spec = _mapping(value, field, FAILURE_KEYS)
    failures: dict[str, Any] = {"rate": _number(spec.get("rate", 0), f"{field}.rate", maximum=1)}
    statuses = plain(spec.get("statuses", [500]))
    if not isinstance(statuses, list) or not statuses:
        raise EntryError(f"{field}.statuses", f"`{field}.statuses` must be a list of HTTP statuses")
    failures["statuses"] = [_number(s, f"{field}.statuses", minimum=400, maximum=599, integer=True) for s in statuses]
    failures["seed"] = _number(spec.get("seed", 0), f"{field}.seed", integer=True)
    return failures


def parse_rate_limits(value: Any, field: str = "rate_limits") -> dict[str, Any]:
    spec = _mapping(value, field, RATE_LIMIT_KEYS)
    return {key: _number(spec[key], f"{field}.{key}", minimum=1) for key in RATE_LIMIT_KEYS if key in spec}


def parse_model_rules(value: Any, field: str = "models") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EntryError(field, f"`{field}` must map model globs to rules", line_of(value))
    parsers = {"timing": parse_timing, "error": parse_error, "stream_error": parse_stream_error,
               "failures": parse_failures}
    rules = {}
    for glob, rule in value.items():
        where = f"{field}.{glob}"
        spec = _mapping(rule, where, MODEL_RULE_KEYS)
        rules[glob] = {key: parsers[key](spec[key], f"{where}.{key}") for key in spec}
    return rules


def header_params(raw: str) -> dict[str, str]:
    """`a=1; b=x` (or a single bare word, kept under "mode") as a mapping of strings."""
    params: dict[str, str] = {}
    for part in (p.strip() for p in raw.split(";")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if sep:
            params[name.strip()] = value.strip()
        else:
            params["mode"] = name.strip()
    return params


# -- what to do for one request -----------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """The failures and timing chosen for one request."""

    error: dict[str, Any] | None = None
    timing: dict[str, Any] = field(default_factory=dict)
    stream_error: dict[str, Any] | None = None


class RandomFailures:
    """The nth request of a process fails when the nth draw of Random(seed) is under the rate: the
    same order of requests gives the same failures, run after run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[tuple[int, str], random.Random] = {}

    def draw(self, seed: int, scope: str) -> float:
        with self._lock:
            generator = self._streams.setdefault((seed, scope), random.Random(seed))
            return generator.random()

    def reset(self) -> None:
        with self._lock:
            self._streams.clear()


random_failures = RandomFailures()


def lag_timing(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The original server's `lag_enabled`/`lag_factor`: lag_factor characters per second, ±20%."""
    if settings.get("lag_enabled"):
        return {"characters_per_second": float(settings.get("lag_factor") or 10), "jitter": 0.2}
    return {}


def plan_for(headers: Mapping[str, str], model: str, entry_options: Mapping[str, Any] | None,
             settings: Mapping[str, Any]) -> Plan:
    """Combine the sources for one request (see the module docstring); raises EntryError on a bad header."""
    rules = [rule for glob, rule in (settings.get("models") or {}).items() if fnmatch.fnmatchcase(model, glob)]
    entry = entry_options or {}

    timing = {**lag_timing(settings), **(settings.get("timing") or {})}
    for rule in rules:
        timing.update(rule.get("timing", {}))
    timing.update(entry.get("timing", {}))
    if "x-mock-timing" in headers:
        timing.update(parse_timing(header_params(headers["x-mock-timing"]), "X-Mock-Timing"))

    error = None
    if (found := ERROR_MODEL.match(model)) and 400 <= int(found.group(1)) <= 599:
        error = {"status": int(found.group(1))}
    for rule in rules:
        error = rule.get("error", error)
    error = entry.get("error", error)
    if error is None:
        for failures in [settings.get("failures")] + [rule.get("failures") for rule in rules]:
            if failures and failures.get("rate", 0) > 0:
                draw = random_failures.draw(failures["seed"], "failures")
                if draw < failures["rate"]:
                    statuses = failures["statuses"]
                    error = {"status": statuses[int(draw / failures["rate"] * len(statuses)) % len(statuses)]}

    stream_error = None
    for rule in rules:
        stream_error = rule.get("stream_error", stream_error)
    stream_error = entry.get("stream_error", stream_error)
    if "x-mock-stream-error" in headers:
        params = header_params(headers["x-mock-stream-error"])
        if params.get("mode") in ("1", "true", "yes"):
            params["mode"] = "error"
        stream_error = parse_stream_error(params, "X-Mock-Stream-Error")
    return Plan(error=error, timing=timing, stream_error=stream_error)


def error_from_headers(headers: Mapping[str, str]) -> dict[str, Any] | None:
    """`X-Mock-Status: 429` with optional X-Mock-Retry-After, X-Mock-Should-Retry, X-Mock-Error-Message."""
    if "x-mock-status" not in headers:
        return None
    spec: dict[str, Any] = {"status": headers["x-mock-status"]}
    for header, key in (("x-mock-retry-after", "retry_after"), ("x-mock-should-retry", "should_retry"),
                        ("x-mock-error-message", "message")):
        if header in headers:
            spec[key] = headers[header]
    return parse_error(spec, "X-Mock-Status")


# -- rate limits ------------------------------------------------------------------------------------

@dataclass
class _Bucket:
    level: float
    updated: float


@dataclass(frozen=True)
class Budget:
    """The state of one client's budgets after a request: for the x-ratelimit-* headers."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float = 0.0
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float = 0.0
    retry_after: float | None = None  # set when the request is refused


# Both buckets of a client, refilled and spent atomically in Redis; a missing key is a full bucket
# (a bucket refills completely in 60 s, so keys expire after 120 s untouched). Numbers come back as
# strings: Redis would truncate Lua floats to integers.
SHARED_SPEND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local function level(key, capacity)
  if capacity <= 0 then return nil end
  local saved = redis.call('HMGET', key, 'level', 'updated')
  if not saved[1] then return capacity end
  return math.min(capacity, tonumber(saved[1]) + (now - tonumber(saved[2])) * capacity / 60)
end
local requests, token_level = level(KEYS[1], rpm), level(KEYS[2], tpm)
local wait = -1
if requests and requests < 1 then wait = math.max(wait, (1 - requests) * 60 / rpm) end
if token_level then
  local need = math.min(tokens, tpm)
  if token_level < need then wait = math.max(wait, (need - token_level) * 60 / tpm) end
end
if wait < 0 then
  if requests then requests = requests - 1 end
  if token_level then token_level = token_level - math.min(tokens, token_level) end
end
for i, pair in ipairs({{KEYS[1], requests}, {KEYS[2], token_level}}) do
  if pair[2] then
    redis.call('HSET', pair[1], 'level', tostring(pair[2]), 'updated', tostring(now))
    redis.call('EXPIRE', pair[1], 120)
  end
end
return {tostring(requests or -1), tostring(token_level or -1), tostring(wait)}
"""


class RateLimiter:
    """Requests- and tokens-per-minute budgets per client, refilled continuously (token buckets).

    With MOCKLLM_REDIS_URL the buckets live in Redis, shared by every server process, so a limit means
    the same behind `uvicorn --workers N` as in one process; the call costs one round trip, on the
    event loop, only for requests under a configured limit. Without Redis, or while it does not
    answer, each process keeps its own. Early-retry notes stay in the process.
    """

    MAX_CLIENTS = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._not_before: OrderedDict[str, float] = OrderedDict()
        self._redis: Any = None  # None: not looked up yet; False: not configured
        self._redis_warned = 0.0

    def _shared(self) -> Any:
        if self._redis is None:
            from django.conf import settings

            url = getattr(settings, "MOCKLLM_REDIS_URL", "")
            if not url:
                self._redis = False
            else:
                import redis

                client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
                prefix = getattr(settings, "MOCKLLM_REDIS_PREFIX", "mockllm")
                self._redis = (client.register_script(SHARED_SPEND), prefix)
        return self._redis or None

    def _spend_shared(self, shared: Any, client: str, rpm: float, tpm: float, tokens: int) -> Budget:
        script, prefix = shared
        key = f"{prefix}:ratelimit:{client}"
        requests, token_level, wait = (float(x) for x in script(keys=[key + ":requests", key + ":tokens"],
                                                                   args=[rpm or 0, tpm or 0, tokens]))
        return Budget(
            limit_requests=int(rpm) if rpm else None,
            remaining_requests=int(requests) if rpm else None,
            reset_requests=(rpm - requests) * 60.0 / rpm if rpm else 0.0,
            limit_tokens=int(tpm) if tpm else None,
            remaining_tokens=int(token_level) if tpm else None,
            reset_tokens=(tpm - token_level) * 60.0 / tpm if tpm else 0.0,
            retry_after=wait if wait >= 0 else None,
        )

    def _bucket(self, client: str, kind: str, capacity: float, now: float) -> _Bucket:
        key = (client, kind)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, now)
        else:
            bucket.level = min(capacity, bucket.level + (now - bucket.updated) * capacity / 60.0)
            bucket.updated = now
            self._buckets.move_to_end(key)
        while len(self._buckets) > 2 * self.MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return bucket

    def spend(self, client: str, limits: Mapping[str, float], tokens: int, now: float | None = None) -> Budget:
        """Take one request and `tokens` from the client's budgets, or refuse and say when to retry."""
        rpm, tpm = limits.get("requests_per_minute"), limits.get("tokens_per_minute")
        shared = self._shared() if now is None else None
        if shared is not None:
            try:
                return self._spend_shared(shared, client, rpm, tpm, tokens)
            except Exception:  # Redis down: this process's own budgets, until it answers again
                if time.monotonic() - self._redis_warned > 60:
                    self._redis_warned = time.monotonic()
                    logging.getLogger("mockllm.faults").warning(
                        "rate limits: Redis does not answer; counting in this process meanwhile", exc_info=True)
        now = time.monotonic() if now is None else now
        with self._lock:
            requests = self._bucket(client, "requests", rpm, now) if rpm else None
            token_bucket = self._bucket(client, "tokens", tpm, now) if tpm else None
            waits = []
            if requests is not None and requests.level < 1:
                waits.append((1 - requests.level) * 60.0 / rpm)
            if token_bucket is not None and token_bucket.level < min(tokens, tpm):
                waits.append((min(tokens, tpm) - token_bucket.level) * 60.0 / tpm)
            refused = max(waits) if waits else None
            if refused is None:
                if requests is not None:
                    requests.level -= 1
                if token_bucket is not None:
                    token_bucket.level -= min(tokens, token_bucket.level)
            return Budget(
                limit_requests=int(rpm) if rpm else None,
                remaining_requests=int(requests.level) if requests is not None else None,
                reset_requests=(rpm - requests.level) * 60.0 / rpm if requests is not None else 0.0,
                limit_tokens=int(tpm) if tpm else None,
                remaining_tokens=int(token_bucket.level) if token_bucket is not None else None,
                reset_tokens=(tpm - token_bucket.level) * 60.0 / tpm if token_bucket is not None else 0.0,
                retry_after=refused,
            )

    def note_retry_after(self, client: str, seconds: float, now: float | None = None) -> None:
        """Remember when this client was told it may retry, to notice one that comes back sooner."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._not_before[client] = now + seconds
            self._not_before.move_to_end(client)
            while len(self._not_before) > self.MAX_CLIENTS:
                self._not_before.popitem(last=False)

    def early_by(self, client: str, now: float | None = None) -> float | None:
        """Seconds by which this request came before the retry-after the client was given, if it did."""
        now = time.monotonic() if now is None else now
        with self._lock:
            not_before = self._not_before.pop(client, None)
        if not_before is not None and now < not_before:
            return not_before - now
        return None

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._not_before.clear()


rate_limiter = RateLimiter()


def seconds_text(seconds: float) -> str:
    """A duration as the x-ratelimit-reset-* headers write it: "1s", "6m0s", "0.5s"."""
    if seconds < 60:
        return f"{math.ceil(seconds * 1000) / 1000:g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{math.ceil(rest):d}s"


TOKEN_PIECES = re.compile(r"\s*(?:\w+|[^\w\s])|\s+")
WORD_PIECES = re.compile(r"\s*\S+|\s+")


def split_text(text: str, chunk: Any = "char") -> list[str]:
    """The pieces a stream sends `text` in: characters (the default), words, tokens or N characters.
    Joined, they are always the text again."""
    if chunk == "word":
        return WORD_PIECES.findall(text)
    if chunk == "token":
        return TOKEN_PIECES.findall(text)
    if isinstance(chunk, int) and chunk > 1:
        return [text[at:at + chunk] for at in range(0, len(text), chunk)]
    return list(text)


def stream_seconds(timing: Mapping[str, Any], pieces: int, characters: int, tokens: int) -> float:
    """How long the answer takes to come out at the configured pace (after the time to first token)."""
    if timing.get("chunks_per_second"):
        return pieces / timing["chunks_per_second"]
    if timing.get("characters_per_second"):
        return characters / timing["characters_per_second"]
    if timing.get("tokens_per_second"):
        return tokens / timing["tokens_per_second"]
    return 0.0
