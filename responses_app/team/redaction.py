"""Secrets never leave the server: API keys and tokens are redacted in the journal and in every log line."""
from __future__ import annotations

import logging
import re
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


def redact_text(text: str) -> str:
    if not _ANY.search(text):
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
    """A logging filter: scrubs secrets from the message and its extra fields."""

    _STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        for key, value in list(record.__dict__.items()):
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
    """JSON lines, with tracebacks scrubbed too (the filter sees a traceback only as exc_info)."""

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        return redact_text(super().formatException(ei))
