"""Requests- and tokens-per-minute budgets per client (the `settings.rate_limits` of the responses file)."""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings

logger = logging.getLogger("mockllm.faults")


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
            url = settings.MOCKLLM_REDIS_URL
            if not url:
                self._redis = False
            else:
                client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
                prefix = settings.MOCKLLM_REDIS_PREFIX
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
                    logger.warning(
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
