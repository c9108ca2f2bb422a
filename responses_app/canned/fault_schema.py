"""What failures and timing may be asked for, checked in one place for the responses file (entries, the
`settings:` block), the admin and the X-Mock-* headers."""
from __future__ import annotations

from typing import Any

from responses_app.canned.fields import EntryError, line_of, mapping, plain, text, unknown_keys

TIMING_RATES = ("chunks_per_second", "characters_per_second", "tokens_per_second")
TIMING_KEYS = ("ttft_ms", *TIMING_RATES, "chunk", "jitter", "seed")
ERROR_KEYS = ("status", "message", "type", "code", "retry_after", "should_retry")
STREAM_FAULTS = ("error", "disconnect", "no_done", "malformed", "stall", "timeout")
STREAM_FAULT_KEYS = ("mode", "after_chunks", "after_ms", "type")
FAILURE_KEYS = ("rate", "statuses", "seed")
RATE_LIMIT_KEYS = ("requests_per_minute", "tokens_per_minute")
MODEL_RULE_KEYS = ("timing", "error", "stream_error", "failures", "content_filter")
# A content filter's refusal (Azure OpenAI's): of the prompt (a 400 `content_filter` error) or of the completion
# (an answer cut off with finish_reason `content_filter`), naming the category that tripped it.
CONTENT_FILTER_KEYS = ("on", "category", "severity")
CONTENT_FILTER_TARGETS = ("prompt", "completion")
SEVERITY_CATEGORIES = ("hate", "sexual", "violence", "self_harm")  # graded safe / low / medium / high
DETECTED_CATEGORIES = {"prompt": ("jailbreak",), "completion": ("protected_material_text", "protected_material_code")}
FILTER_SEVERITIES = ("low", "medium", "high")
DEFAULT_FILTER = {"category": "violence", "severity": "high"}


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
    if "type" in spec:  # the error event's type, for mode `error` (Bedrock: throttlingException...)
        fault["type"] = text(spec["type"], f"{field}.type")
    return fault


def parse_content_filter(value: Any, field: str = "content_filter") -> dict[str, Any]:
    """`prompt`, `completion`, or `{on: prompt|completion, category: ..., severity: low|medium|high}`."""
    spec = {"on": value} if isinstance(plain(value), str) else _mapping(value, field, CONTENT_FILTER_KEYS)
    target = text(spec.get("on"), f"{field}.on")
    if target not in CONTENT_FILTER_TARGETS:
        raise EntryError(f"{field}.on", f"`{field}.on` must be prompt or completion; got {target!r}",
                         line_of(spec.get("on")))
    categories = SEVERITY_CATEGORIES + DETECTED_CATEGORIES[target]
    fault = {"on": target, **DEFAULT_FILTER}
    if "category" in spec:
        fault["category"] = text(spec["category"], f"{field}.category")
        if fault["category"] not in categories:
            raise EntryError(f"{field}.category", f"`{field}.category` must be one of {', '.join(categories)} "
                             f"(for the {target}); got {fault['category']!r}", line_of(spec["category"]))
    if "severity" in spec:
        fault["severity"] = text(spec["severity"], f"{field}.severity")
        if fault["severity"] not in FILTER_SEVERITIES:
            raise EntryError(f"{field}.severity", f"`{field}.severity` must be one of {', '.join(FILTER_SEVERITIES)}; "
                             f"got {fault['severity']!r}", line_of(spec["severity"]))
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
               "failures": parse_failures, "content_filter": parse_content_filter}
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
