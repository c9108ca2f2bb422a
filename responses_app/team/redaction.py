"""Secrets never leave the server: API keys and tokens are redacted in the journal and in every log line."""
from __future__ import annotations

import logging
import re
import time
from typing import Any

from pythonjsonlogger.orjson import OrjsonFormatter

REDACTED = "[redacted]"
# Headers whose values are secrets, by lower-case name.
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie", "set-cookie",
    "x-mock-control-token", "x-amz-security-token",
})
# Secrets that may turn up inside any text: bearer credentials, keys of the usual shapes, header lines.
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"),
    re.compile(r"(?i)((?:x-api-key|api-key|authorization)[\"']?\s*[:=]\s*[\"']?)(?!bearer\s)[^\s\"',;]+"),
    re.compile(r"(?i)([?&]key=)[^\s&\"',;]+"),  # Gemini's key in a URL's query
    re.compile(r"\b(AIza)[A-Za-z0-9_\-]{20,}"),  # Google API keys
    re.compile(r"\b(sk-ant-|sk-proj-|sk-|mk-)[A-Za-z0-9_\-]{6,}"),
)


_ANY = re.compile(r"(?i)bearer|api-key|authorization|sk-|mk-|key=|AIza")  # one quick scan before the patterns above
_HEADER_NAMES: dict[str, str] = {}
_ANY_WORDS = ("bearer", "api-key", "authorization", "sk-", "mk-", "key=", "aiza")  # _ANY's, lower-cased


def _may_hold_secret(text: str) -> bool:
    """_ANY.search, faster on ASCII text (a few substring scans); other text goes to the regex, whose
    case-insensitive matching knows more of Unicode than str.lower does."""
    if not text.isascii():
        return _ANY.search(text) is not None
    lowered = text.lower()
    return any(word in lowered for word in _ANY_WORDS)


def redact_text(text: str) -> str:
    if not _may_hold_secret(text):
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def redact_header(name: str, value: str) -> str:
    if name.lower() not in SECRET_HEADERS:
        return redact_text(value)
    scheme, _, rest = value.partition(" ")
    if rest and scheme.lower() in ("bearer", "basic", "token"):
        return f"{scheme} {REDACTED}"
    return REDACTED


def request_headers(meta: dict[str, Any]) -> dict[str, str]:
    """A request's headers by lower-case name, secrets redacted."""
    headers = {}
    for key, value in meta.items():
        name = _HEADER_NAMES.get(key)
        if name is None:
            if key.startswith("HTTP_"):
                name = key[5:].lower().replace("_", "-")
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                name = key.lower().replace("_", "-")
            else:
                name = ""
            if len(_HEADER_NAMES) < 10_000:
                _HEADER_NAMES[key] = name
        if name:
            headers[name] = redact_header(name, str(value))
    return headers


class RedactSecrets(logging.Filter):
    """A logging filter: scrubs secrets from the message and its extra fields.

    One quick scan of all the record's texts first: a line with nothing that looks like a secret (every
    access-log line in practice) is passed on untouched, without the per-field work."""

    _STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        fields = record.__dict__
        extra = fields.keys() - self._STANDARD
        texts = [message]
        for key in extra:
            value = fields[key]
            if type(value) is str:
                texts.append(value)
            elif isinstance(value, (str, list, tuple, dict)):
                break  # texts inside: the field-by-field way below
        else:
            if not _may_hold_secret("\0".join(texts)):
                return True  # nothing redact_text would change (numbers and None it leaves alone)
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        for key, value in list(fields.items()):
            if key not in self._STANDARD and isinstance(value, (str, list, tuple, dict)):
                setattr(record, key, redact_value(value))
        return True


class RedactArguments(logging.Filter):
    """For a logger whose formatter needs a record's arguments as they are (uvicorn's access log, whose
    URLs may carry a Gemini `?key=`): secrets redacted in each text argument."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_text(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def redact_value(value: Any) -> Any:
    """A log field with secrets redacted, in a text or in the texts of a list or mapping (near misses)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (list, tuple)):
        return [redact_value(item) for item in value]
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    return value


class JsonFormatter(OrjsonFormatter):
    """JSON lines, with tracebacks scrubbed too (the filter sees a traceback only as exc_info).

    The same lines as python-json-logger's formatter, with less work per line (one is written per
    request): the date part of the time formatted once per second, and the record's extra fields
    gathered without its general-purpose checks when no option needs them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._second: tuple[int, str] = (-1, "")
        self._plain = not (self.defaults or self.static_fields or self.timestamp or self.rename_fields_keep_missing)

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        return redact_text(super().formatException(ei))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt or not self.default_msec_format or self.converter is not time.localtime:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, time.strftime(self.default_time_format, self.converter(record.created)))
        return self.default_msec_format % (self._second[1], record.msecs)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        if message_dict or not self._plain:
            return super().add_fields(log_data, record, message_dict)
        rename, fields, skip = self.rename_fields, record.__dict__, self._skip_fields
        for field in self._required_fields:
            log_data[rename.get(field, field)] = fields.get(field)
        for key in [key for key in fields if key not in skip]:  # as merge_record_extra: not reserved, not "_private"
            if key[:1] == "_" if type(key) is str else hasattr(key, "startswith") and key.startswith("_"):
                continue
            log_data[rename.get(key, key)] = fields[key]
        return None
