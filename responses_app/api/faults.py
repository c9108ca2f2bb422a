"""Failures and timing on demand: what to break or slow down for one request, decided in one place.

Sources, strongest first: the request's X-Mock-* headers, the matched entry's options, the
`models:` rules of the responses file's `settings:` (by model glob), then its global settings.
"""
from __future__ import annotations

import fnmatch
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping

from responses_app.canned.fault_schema import header_params, parse_error, parse_stream_error, parse_timing

ERROR_MODEL = re.compile(r"^mock-error-(\d{3})$")


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
